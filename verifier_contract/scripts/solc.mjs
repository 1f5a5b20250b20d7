#!/usr/bin/env node
// Standard-JSON front end to the pinned npm `solc` (solc-js 0.8.28), so the project needs no
// native solc download. Reads a standard-json input on stdin and writes the output on stdout,
// like `solc --standard-json`; compile errors are reported inside the output, not by exit code.
// It speaks just enough of solc's CLI (--version, --standard-json, --base-path, --include-path,
// --allow-paths) to be named as forge's `solc` in foundry.toml.
import fs from "node:fs";
import path from "node:path";
import solc from "solc";

function usage(message) {
  process.stderr.write(`solc.mjs: ${message}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let basePath = "";
const includePaths = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const value = () => {
    if (i + 1 >= args.length) usage(`${arg} needs a value`);
    return args[++i];
  };
  switch (arg) {
    case "--version":
    case "-v":
      // forge parses the "Version:" line of native solc's output.
      process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
      process.exit(0);
    case "--standard-json":
      break; // the only mode there is
    case "--base-path":
      basePath = value();
      break;
    case "--include-path":
      includePaths.push(value());
      break;
    case "--allow-paths":
      value(); // reads are already limited to the base and include paths
      break;
    default:
      usage(`unsupported argument ${arg} (standard-json input is read from stdin)`);
  }
}

// Imports not given in the input's `sources` are read relative to the base path (else the
// working directory) and then each include path, as native solc does.
function findImports(sourceUnitName) {
  const roots = [basePath || process.cwd(), ...includePaths];
  for (const root of roots) {
    const candidate = path.resolve(root, sourceUnitName);
    const rel = path.relative(path.resolve(root), candidate);
    if (rel.startsWith("..") || path.isAbsolute(rel)) continue;
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `File not found: ${sourceUnitName} (searched ${roots.join(", ")})` };
}

const input = fs.readFileSync(0, "utf8");
if (!input.trim()) usage("expected standard-json input on stdin");
process.stdout.write(solc.compile(input, { import: findImports }));
process.stdout.write("\n");
