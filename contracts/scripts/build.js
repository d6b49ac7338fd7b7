#!/usr/bin/env node
// Compile contracts/src (and contracts/test: test-only contracts) with the pinned solcjs
// through its standard-JSON API; imports resolve into node_modules. Writes one artifact per
// contract to build/<Name>.json: abi, bytecode, deployed bytecode, compiler version and the
// SHA-256 of every source it was built from. `--check` compiles and fails (exit 1) when the
// committed artifacts differ, without writing.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const BUILD = path.join(ROOT, "build");
const DIRS = ["src", "test"];
const check = process.argv.includes("--check");

function sha256(text) {
  return crypto.createHash("sha256").update(text).digest("hex");
}

const sources = {};
for (const dir of DIRS) {
  const full = path.join(ROOT, dir);
  for (const name of fs.readdirSync(full).sort()) {
    if (name.endsWith(".sol")) {
      const rel = `${dir}/${name}`;
      sources[rel] = { content: fs.readFileSync(path.join(full, name), "utf8") };
    }
  }
}

const used = {};
function findImports(importPath) {
  const candidates = [path.join(ROOT, importPath), path.join(ROOT, "node_modules", importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) {
      const content = fs.readFileSync(file, "utf8");
      used[importPath] = sha256(content);
      return { contents: content };
    }
  }
  return { error: `not found: ${importPath}` };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(2);

const sourceHashes = {};
for (const [rel, src] of Object.entries(sources)) sourceHashes[rel] = sha256(src.content);
for (const [rel, h] of Object.entries(used).sort()) sourceHashes[rel] = h;

let stale = [];
if (!check) fs.mkdirSync(BUILD, { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!file.startsWith("src/") && !file.startsWith("test/")) continue;
  for (const [name, c] of Object.entries(contracts)) {
    const artifact = {
      contractName: name,
      sourceName: file,
      testOnly: file.startsWith("test/"),
      compiler: { name: "solc", version: solc.version(), settings: input.settings },
      sourceHashes,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    const text = JSON.stringify(artifact, null, 1) + "\n";
    const dest = path.join(BUILD, `${name}.json`);
    if (check) {
      const old = fs.existsSync(dest) ? fs.readFileSync(dest, "utf8") : "";
      if (old !== text) stale.push(`${name}.json`);
    } else {
      fs.writeFileSync(dest, text);
      console.log(`wrote build/${name}.json (${c.evm.bytecode.object.length / 2} bytes)`);
    }
  }
}
if (check) {
  if (stale.length) {
    console.error(`stale artifacts (run npm --prefix contracts run build): ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log("artifacts up to date");
}
