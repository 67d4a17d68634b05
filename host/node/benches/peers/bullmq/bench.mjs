// BullMQ, the peer of jobhost's throughput bench: the same no-op jobs in the same shape (a
// burst enqueued, then processed), on a redis-server started like jobhost's (AOF, fsync
// every second, no RDB snapshots). Prints jobs/s enqueue+process and processing alone.
//
// Usage: node bench.mjs REDIS_PORT [JOBS] [CONCURRENCY]
import { Queue, Worker } from "bullmq";

const port = Number(process.argv[2]);
const jobs = Number(process.argv[3] ?? 20000);
const concurrency = Number(process.argv[4] ?? 50);
const connection = { host: "127.0.0.1", port, maxRetriesPerRequest: null };

async function run(name) {
  const queue = new Queue(name, { connection });
  await queue.obliterate({ force: true }).catch(() => {});
  const t0 = performance.now();
  const batch = 1000;
  for (let i = 0; i < jobs; i += batch) {
    const n = Math.min(batch, jobs - i);
    await queue.addBulk(
      Array.from({ length: n }, (_, k) => ({
        name: "noop",
        // BullMQ's defaults keep finished jobs, as jobhost keeps their records.
        data: { i: i + k },
      })),
    );
  }
  const t1 = performance.now();
  let done = 0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(
      name,
      async () => {},
      { connection, concurrency, autorun: true },
    );
    worker.on("completed", () => {
      done += 1;
      if (done === jobs) resolve(worker);
    });
  });
  const worker = await finished;
  const t2 = performance.now();
  await worker.close();
  await queue.close();
  const s = (ms) => ms / 1000;
  return {
    enqueue: jobs / s(t1 - t0),
    process: jobs / s(t2 - t1),
    endToEnd: jobs / s(t2 - t0),
  };
}

for (let round = 1; round <= 3; round++) {
  const r = await run(`bench-${round}`);
  console.log(
    `bullmq round ${round}: ${jobs} no-op jobs, concurrency ${concurrency}: ` +
      `end to end ${r.endToEnd.toFixed(0)} jobs/s, processing ${r.process.toFixed(0)} jobs/s, ` +
      `enqueue ${r.enqueue.toFixed(0)} jobs/s`,
  );
}
process.exit(0);
