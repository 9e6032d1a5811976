// Compiles TraceAnchor.sol with the pinned solc-js into TraceAnchor.json
// (ABI, creation and runtime bytecode, compiler settings, source digest).
// Usage: node tracer/contracts/build.js [--check]
//   --check: compile and compare with the committed artefact, exit 1 on mismatch.
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require(path.resolve(__dirname, "../../node_modules/solc"));

const dir = __dirname;
const source = fs.readFileSync(path.join(dir, "TraceAnchor.sol"), "utf8");
const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "paris", // no PUSH0: runs on Besu networks with older forks too
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const input = { language: "Solidity", sources: { "TraceAnchor.sol": { content: source } }, settings };
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(2);
}
const c = out.contracts["TraceAnchor.sol"].TraceAnchor;
const artefact = {
  contractName: "TraceAnchor",
  compiler: "solc-js " + solc.version(),
  settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion, metadata: settings.metadata },
  sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
const text = JSON.stringify(artefact, null, 2) + "\n";
const target = path.join(dir, "TraceAnchor.json");
if (process.argv.includes("--check")) {
  const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
  if (current !== text) {
    console.error("TraceAnchor.json does not match TraceAnchor.sol; run node tracer/contracts/build.js");
    process.exit(1);
  }
  console.log("TraceAnchor.json matches TraceAnchor.sol");
} else {
  fs.writeFileSync(target, text);
  console.log("wrote " + target);
}
