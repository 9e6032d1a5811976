# Compiled Python files never land in the checkout, whoever runs the code
# (make, a benchmark run by hand, a service the hub starts with a clean
# environment): a .pth file in each environment sets it up at interpreter start.
#   .venv            compiled files go to ${XDG_CACHE_HOME:-~/.cache}/insitu/pycache
#                    (PYTHONPYCACHEPREFIX, when set, wins);
#   .venv-workspace  writes none (its code runs read-only inside the sandbox; a
#                    root process on the host must not write there either).
# Usage: pycache_outside <venv> prefix|none
pycache_outside() {
  local venv=$1 mode=$2 site line
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ "$mode" = prefix ]; then
    line='import os, sys; sys.pycache_prefix = sys.pycache_prefix or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "insitu", "pycache")'
  else
    line='import sys; sys.dont_write_bytecode = True'
  fi
  printf '%s\n' "$line" > "$site/insitu-pycache.pth.new"
  mv "$site/insitu-pycache.pth.new" "$site/insitu-pycache.pth"
}
