// Test helper: many snarkjs Groth16 fullProve runs in one node process (the CLI pays ~1 s of
// start-up per proof). stdin: [{wasm, zkey, input}], stdout: [{proof, publicSignals}].
import fs from "node:fs";
import * as snarkjs from "snarkjs";

const jobs = JSON.parse(fs.readFileSync(0, "utf8"));
const results = [];
for (const job of jobs) {
  const { proof, publicSignals } = await snarkjs.groth16.fullProve(job.input, job.wasm, job.zkey);
  results.push({ proof, publicSignals });
}
process.stdout.write(JSON.stringify(results));
// snarkjs leaves its curve worker threads alive; exit explicitly.
process.exit(0);
