// Batch driver for snarkjs: one Node process proves and verifies many jobs, so the curve and
// worker threads start once rather than per batch.
//
// stdin:  {"jobs": [{"kind": "prove", "input": f, "wasm": f, "zkey": f, "vkey": f,
//                    "proof_out": f, "public_out": f},
//                   {"kind": "witness", "input": f, "wasm": f, "wtns_out": f},
//                   {"kind": "verify", "vkey": f, "proof": f, "public": f}]}
// stdout: one JSON line per job: {"i": n, "ok": bool, "seconds": s, "error"?: msg}, plus
//         witness_s / prove_s / verify_s for prove jobs
// With --stream: one job object per stdin line instead, one result line each, until EOF.
// Outputs are written to a temporary name and renamed, so a killed run leaves no half files.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

const require = createRequire(path.join(process.cwd(), "package.json"));
const snarkjs = require("snarkjs");

function readJson(f) {
  return JSON.parse(fs.readFileSync(f, "utf8"));
}

function writeAtomic(target, text) {
  const tmp = `${target}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  fs.writeSync(fd, text);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, target);
}

async function prove(job) {
  const input = readJson(job.input);
  const wtns = path.join(os.tmpdir(), `zksolvency-${process.pid}-${Date.now()}.wtns`);
  const t = {};
  try {
    let t0 = Date.now();
    await snarkjs.wtns.calculate(input, job.wasm, wtns);
    t.witness_s = (Date.now() - t0) / 1000;
    t0 = Date.now();
    const { proof, publicSignals } = await snarkjs.groth16.prove(job.zkey, wtns);
    t.prove_s = (Date.now() - t0) / 1000;
    t0 = Date.now();
    const ok = await snarkjs.groth16.verify(readJson(job.vkey), publicSignals, proof);
    t.verify_s = (Date.now() - t0) / 1000;
    if (!ok) throw new Error("the fresh proof does not verify against its verification key");
    writeAtomic(job.proof_out, JSON.stringify(proof, null, 1) + "\n");
    writeAtomic(job.public_out, JSON.stringify(publicSignals, null, 1) + "\n");
  } finally {
    fs.rmSync(wtns, { force: true });
  }
  return t;
}

// Witness only, for a native prover: the .wtns goes to job.wtns_out (atomically).
async function witness(job) {
  const input = readJson(job.input);
  const tmp = `${job.wtns_out}.${process.pid}.tmp`;
  const t0 = Date.now();
  try {
    await snarkjs.wtns.calculate(input, job.wasm, tmp);
    fs.renameSync(tmp, job.wtns_out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { witness_s: (Date.now() - t0) / 1000 };
}

async function verify(job) {
  return snarkjs.groth16.verify(readJson(job.vkey), readJson(job.public), readJson(job.proof));
}

async function runJob(job, i) {
  const start = Date.now();
  try {
    const run = { prove, witness, verify }[job.kind];
    if (!run) throw new Error(`unknown job kind ${job.kind}`);
    const res = await run(job);
    const ok = res !== false;
    return { i, ok, seconds: (Date.now() - start) / 1000, ...(typeof res === "object" ? res : {}) };
  } catch (err) {
    return { i, ok: false, seconds: (Date.now() - start) / 1000, error: String(err && err.message || err) };
  }
}

if (process.argv.includes("--stream")) {
  // One job per stdin line, one result line each, until stdin closes: a caller keeps this
  // process (its curve, worker threads and compiled wasm) for a whole run.
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let i = 0;
  for await (const text of lines) {
    if (text.trim()) process.stdout.write(JSON.stringify(await runJob(JSON.parse(text), i++)) + "\n");
  }
  process.exit(0);
}

const request = JSON.parse(fs.readFileSync(0, "utf8"));
let failed = false;
for (let i = 0; i < request.jobs.length; i++) {
  const job = request.jobs[i];
  const line = await runJob(job, i);
  if (!line.ok) failed = true;
  process.stdout.write(JSON.stringify(line) + "\n");
  if (!line.ok && job.kind !== "verify") break;
}
// snarkjs keeps worker threads alive; exit explicitly.
process.exit(failed ? 1 : 0);
