// Witness calculator service for tests/circuits/harness.py.
//
// Reads one JSON request per line on stdin, {"wasm": "/abs/path/x.wasm", "input": {...}}, and
// answers each with one JSON line: {"ok": true, "witness": ["1", ...]} or {"ok": false,
// "error": "..."}. Each circuit's own witness_calculator.js (written by circom next to its wasm)
// is loaded once, so a test pays node's start-up and the wasm compile once per circuit instead
// of once per witness. Requests are answered strictly in order.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");

// A circuit's log() output must not interleave with the answers on stdout.
console.log = (...args) => process.stderr.write(args.join(" ") + "\n");

const calculators = new Map();

async function calculator(wasm) {
  let calc = calculators.get(wasm);
  if (calc === undefined) {
    const builder = require(path.join(path.dirname(wasm), "witness_calculator.js"));
    calc = await builder(fs.readFileSync(wasm));
    calculators.set(wasm, calc);
  }
  return calc;
}

async function answer(line) {
  let reply;
  let wasm;
  try {
    const request = JSON.parse(line);
    wasm = request.wasm;
    const calc = await calculator(wasm);
    const witness = await calc.calculateWitness(request.input, true);
    reply = { ok: true, witness: witness.map(String) };
  } catch (err) {
    // The calculator keeps its error text across calls: start afresh after a failure.
    if (wasm !== undefined) calculators.delete(wasm);
    reply = { ok: false, error: String((err && err.message) || err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}

let queue = Promise.resolve();
readline
  .createInterface({ input: process.stdin })
  .on("line", (line) => {
    queue = queue.then(() => answer(line));
  });
