"""`python -m tracer dev-chain`: a local chain whose state survives a restart."""

import signal
import subprocess
import sys

from tracer.chain import Chain
from tracer.devchain import DEV_KEYS, free_port, wait_rpc
from tracer.settings import ROOT


def run_chain(state_dir, port):
    proc = subprocess.Popen([sys.executable, "-m", "tracer", "dev-chain", "--port", str(port), "--state-dir", str(state_dir)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    wait_rpc(f"http://127.0.0.1:{port}", process=proc)
    return proc


def test_dev_chain_keeps_its_state(tmp_path):
    port = free_port()
    proc = run_chain(tmp_path, port)
    try:
        key = (tmp_path / "tracer.key").read_text().strip()
        assert key == DEV_KEYS[0] and (tmp_path / "tracer.key").stat().st_mode & 0o077 == 0
        chain = Chain(f"http://127.0.0.1:{port}", key)
        address, tx_hash, raw, _ = chain.deploy_tx()
        chain.send_raw(raw)
        assert chain.wait_receipt(tx_hash, 10)["status"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) is not None
    assert (tmp_path / "state.json").exists()
    proc = run_chain(tmp_path, port)
    try:
        chain = Chain(f"http://127.0.0.1:{port}", DEV_KEYS[0])
        chain.attach(address)  # the contract deployed before the restart is still there
        assert chain.contract_state() == (1, b"\x00" * 32, 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
