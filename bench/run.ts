import { mkdir, writeFile } from "node:fs/promises";
import { DateTime } from "luxon";
import { loadRules } from "../src/config/load-rules.js";
import { startRedisCluster } from "../test/support/redis-cluster.js";
import { startRedisServer } from "../test/support/redis-server.js";
import { startProviders } from "./arrival-sink.js";
import { writeBenchConfig } from "./bench-config.js";
import { scratchDir } from "./bench-env.js";
import { BENCH_SHARDS, clusterComparison, clusterScenario, RESHARD_TO } from "./cluster-bench.js";
import { clusterOverhead, overheadRatios } from "./cluster-overhead.js";
import { type PassThroughResult, passThroughIntake, plainDelayedJobs } from "./intake-baselines.js";
import { dueLatency } from "./latency-bench.js";
import { gitState, machine } from "./machine.js";
import { plannerBench } from "./planner-bench.js";
import { eventsForFollowUps, stepsPerMixPosition } from "./purchases.js";
import { round } from "./redis-stats.js";
import { buildResults, LISTPACK_VALUE, type SendFigures, summaryRows } from "./report.js";
import { scheduleThroughIntake } from "./schedule-bench.js";
import { noopThroughput, rateOver, sendThroughput } from "./send-bench.js";

/**
 * `npm run bench`: speed and memory of the pipeline on a private redis-server it starts itself,
 * each figure next to a baseline measured in the same run, so results compare across machines as
 * ratios. `--quick` is a CI-sized smoke run (well under a minute); `--full` adds the 1,000,000
 * pending follow-ups scale run. Prints a table and writes bench/results/latest.json.
 */
const mode = process.argv.includes("--full")
  ? "full"
  : process.argv.includes("--quick")
    ? "quick"
    : "default";
const quick = mode === "quick";
const SIZES = {
  plannerEvents: quick ? 5_000 : 100_000,
  pending: quick ? 3_000 : 100_000,
  latency: quick
    ? { messages: 100, spreadMs: 3_000, leadMs: 3_000 }
    : { messages: 500, spreadMs: 10_000, leadMs: 5_000 },
  send: quick ? 600 : 4_000,
  rate: { perSecond: 50, windowSeconds: quick ? 5 : 8 },
  scale: 1_000_000,
  scaleBatchEvents: 100_000,
};
/** Rates high enough never to hold back the throughput and latency benches. */
const OPEN_RATES = { emailRate: 10_000, smsRate: 10_000 };
/** The worker's defaults (INTAKE_CONCURRENCY, DELIVERY_CONCURRENCY), given to the reference workers. */
const INTAKE_CONCURRENCY = 32;
const DELIVERY_CONCURRENCY = 8;

const benchStart = Date.now();
const log = (line: string) =>
  console.log(`[${((Date.now() - benchStart) / 1000).toFixed(0).padStart(3)} s] ${line}`);
const scratch = await scratchDir(mode);

/**
 * `--cluster`: the same worker process against one Redis and against a private three-master
 * Redis Cluster, both with FOLLOW_UP_SHARDS=16, then on the cluster with REDIS_WAIT_REPLICAS=1.
 * Writes bench/results/cluster.json.
 */
async function clusterRun(): Promise<void> {
  const sizes = quick ? { events: 2_000, sends: 300 } : { events: 20_000, sends: 2_000 };
  const about = await machine();
  log(`cluster bench on ${about.cpus} × ${about.cpuModel}, Redis ${about.redis}`);
  const providers = await startProviders();
  const single = await startRedisServer();
  const cluster = await startRedisCluster();
  try {
    const common = { ...sizes, providers, scratch, log };
    log(`one Redis: ${sizes.events} events, then ${sizes.sends} sends…`);
    const one = await clusterScenario({
      ...common,
      label: "one Redis",
      target: { url: single.url, cluster: false },
      reshardTo: RESHARD_TO,
    });
    log("Redis Cluster, three masters…");
    const spread = await clusterScenario({
      ...common,
      label: "cluster",
      target: { url: cluster.url, cluster: true },
      reshardTo: RESHARD_TO,
    });
    log("Redis Cluster with REDIS_WAIT_REPLICAS=1…");
    const waiting = await clusterScenario({
      ...common,
      label: "cluster, WAIT 1",
      target: { url: cluster.url, cluster: true },
      extraEnv: { REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "1000" },
    });
    const comparison = clusterComparison(one, spread, waiting);
    const results = {
      mode: `cluster${quick ? " (quick)" : ""}`,
      machine: about,
      shards: BENCH_SHARDS,
      seconds: round((Date.now() - benchStart) / 1000, 1),
      scenarios: [one, spread, waiting],
      comparison,
    };
    console.table(
      [one, spread, waiting].map((run) => ({
        run: run.label,
        "B/pending": run.bytesPerPending,
        "intake ev/s": run.intake.eventsPerSecond,
        "worker ms/event": run.intake.workerCpuMsPerEvent,
        "redis ms/event by master": run.intake.redisCpuMsPerEventByMaster.join(" "),
        "sends/s": run.send.perSecond,
        "worker ms/send": run.send.workerCpuMsPerSend,
        "redis ms/send by master": run.send.redisCpuMsPerSendByMaster.join(" "),
      })),
    );
    console.table(comparison);
    log("what each master holds, busiest at intake first (Redis ms per event / per send):");
    console.table(
      [one, spread, waiting].flatMap((run) =>
        run.intake.holdingsByMaster.map((holds, i) => ({
          run: run.label,
          holds,
          "ms/event": run.intake.redisCpuMsPerEventByMaster[i],
          "ms/send": run.send.redisCpuMsPerSendByMaster[run.send.holdingsByMaster.indexOf(holds)],
        })),
      ),
    );
    for (const run of [one, spread]) {
      log(`${run.label}, busiest master at intake (µs per event by command):`);
      console.table(run.intake.busiestMasterCommands);
    }
    log(`followups reshard ${BENCH_SHARDS} → ${RESHARD_TO} shards, workers stopped:`);
    console.table(
      [one, spread].map((run) => ({
        run: run.label,
        seconds: run.reshard?.seconds,
        purchases: run.reshard?.purchasesPlaced,
        "purchases/s": run.reshard?.purchasesPerSecond,
        "keys moved": run.reshard?.keysMoved,
        "jobs moved": run.reshard?.jobsMoved,
        "scheduled moved": run.reshard?.scheduledMoved,
        "references rewritten": run.reshard?.referencesRewritten,
      })),
    );
    await mkdir("bench/results", { recursive: true });
    await writeFile("bench/results/cluster.json", `${JSON.stringify(results, null, 2)}\n`);
    log(`wrote bench/results/cluster.json (${results.seconds} s)`);
  } finally {
    await providers.close();
    await single.stop();
    await cluster.stop();
  }
}

async function scheduleAndLatency(perPosition: number[]) {
  const { events, followUps } = eventsForFollowUps(perPosition, SIZES.pending);
  log(`plain BullMQ baseline: ${followUps} delayed jobs with the purchase as payload…`);
  const plain = await plainDelayedJobs({ events, perPosition, breakdown: true });
  log("pass-through reference: a BullMQ worker that only turns events into delayed jobs…");
  const passThrough = await passThroughIntake({
    events,
    perPosition,
    scratch,
    concurrency: INTAKE_CONCURRENCY,
  });
  log(`intake: ${events} purchase events → ${followUps} follow-ups through one worker process…`);
  const providers = await startProviders();
  const session = await scheduleThroughIntake({
    events,
    batchEvents: events,
    perPosition,
    providers,
    scratch,
    rates: OPEN_RATES,
    log,
  });
  try {
    log("memory breakdown (MEMORY USAGE of every key)…");
    const breakdown = await session.memoryBreakdown();
    log(
      `latency: ${SIZES.latency.messages} follow-ups falling due with ${session.run.followUps} pending…`,
    );
    const latency = await dueLatency(session, providers, SIZES.latency);
    await session.close();
    // The same intake on a Redis whose hashes stay compact listpacks with values up to 1 KB (a
    // server setting, no code change): what that setting alone saves per pending follow-up.
    let listpackRun: Awaited<ReturnType<typeof scheduleThroughIntake>>["run"] | undefined;
    if (!quick) {
      log(`memory with hash-max-listpack-value ${LISTPACK_VALUE}: the same intake again…`);
      const tuned = await scheduleThroughIntake({
        events,
        batchEvents: events,
        perPosition,
        providers,
        scratch,
        rates: OPEN_RATES,
        redisConfig: { "hash-max-listpack-value": String(LISTPACK_VALUE) },
      });
      listpackRun = tuned.run;
      await tuned.close();
    }
    // The pass-through again, after both intake runs: pass, ours, ours, pass, so that a machine
    // speeding up or slowing down during the bench (by a third between runs here) weighs on both
    // sides of the ratio alike.
    let passThroughAfter: PassThroughResult | undefined;
    if (!quick) {
      log("pass-through reference again, after both intake runs…");
      passThroughAfter = await passThroughIntake({
        events,
        perPosition,
        scratch,
        concurrency: INTAKE_CONCURRENCY,
      });
    }
    return {
      plain,
      passThrough,
      run: session.run,
      breakdown,
      latency,
      listpackRun,
      passThroughAfter,
    };
  } finally {
    await session.close();
    await providers.close();
  }
}

async function sending(): Promise<SendFigures> {
  const server = await startRedisServer();
  const providers = await startProviders();
  const common = { redisUrl: server.url, scratch };
  try {
    log(`send throughput: ${SIZES.send} due follow-ups, no-op baseline then one worker process…`);
    const noopOne = await noopThroughput({
      ...common,
      workers: 1,
      jobs: SIZES.send,
      concurrency: DELIVERY_CONCURRENCY,
    });
    const one = await sendThroughput({
      ...common,
      providers,
      workers: 1,
      messages: SIZES.send,
      channels: "email and sms",
      rates: OPEN_RATES,
    });
    log("two worker processes (and two no-op workers)…");
    const noopTwo = await noopThroughput({
      ...common,
      workers: 2,
      jobs: SIZES.send,
      concurrency: DELIVERY_CONCURRENCY,
    });
    const two = await sendThroughput({
      ...common,
      providers,
      workers: 2,
      messages: SIZES.send,
      channels: "email and sms",
      rates: OPEN_RATES,
    });
    const { perSecond, windowSeconds } = SIZES.rate;
    log(`rate limit: email at ${perSecond}/s for ${windowSeconds} s…`);
    const limited = await sendThroughput({
      ...common,
      providers,
      workers: 1,
      // Enough for the window plus the part-second before it and some to spare.
      messages: perSecond * (windowSeconds + 2),
      channels: "email",
      rates: { emailRate: perSecond, smsRate: perSecond },
    });
    const { arrivals: _one, ...oneRun } = one;
    const { arrivals: _two, ...twoRun } = two;
    const { arrivals, ...limitedRun } = limited;
    return {
      noopOne,
      one: oneRun,
      noopTwo,
      two: twoRun,
      rate: { ...rateOver(arrivals, perSecond, windowSeconds), run: limitedRun },
    };
  } finally {
    await providers.close();
    await server.stop();
  }
}

async function scale(perPosition: number[]) {
  const { events, followUps } = eventsForFollowUps(perPosition, SIZES.scale);
  log(`scale: plain BullMQ baseline, ${followUps} delayed jobs…`);
  const plain = await plainDelayedJobs({ events, perPosition, breakdown: false });
  log(`scale: ${events} events → ${followUps} follow-ups through one worker process…`);
  const providers = await startProviders();
  const session = await scheduleThroughIntake({
    events,
    batchEvents: SIZES.scaleBatchEvents,
    perPosition,
    providers,
    scratch,
    rates: OPEN_RATES,
    log,
  });
  try {
    log(`scale: latency, ${SIZES.latency.messages} follow-ups falling due with 1M pending…`);
    const latency = await dueLatency(session, providers, SIZES.latency);
    return { plain, run: session.run, latency };
  } finally {
    await session.close();
    await providers.close();
  }
}

/**
 * `--cluster-overhead`: the cluster bench's workload on one Redis, one Redis with a replica, a
 * one-node cluster, three masters without replicas and three with, two rounds in turn: where a
 * cluster's Redis CPU beyond one Redis's goes. Writes bench/results/cluster-overhead.json.
 */
async function clusterOverheadRun(): Promise<void> {
  const sizes = quick
    ? { events: 2_000, sends: 300, rounds: 1 }
    : { events: 20_000, sends: 2_000, rounds: 2 };
  const about = await machine();
  log(`cluster overhead on ${about.cpus} × ${about.cpuModel}, Redis ${about.redis}`);
  const providers = await startProviders();
  try {
    const rows = await clusterOverhead({ ...sizes, providers, scratch, log });
    console.table(overheadRatios(rows));
    const results = {
      mode: `cluster overhead${quick ? " (quick)" : ""}`,
      machine: about,
      shards: BENCH_SHARDS,
      events: sizes.events,
      sends: sizes.sends,
      seconds: round((Date.now() - benchStart) / 1000, 1),
      rows,
    };
    await mkdir("bench/results", { recursive: true });
    await writeFile("bench/results/cluster-overhead.json", `${JSON.stringify(results, null, 2)}\n`);
    log(`wrote bench/results/cluster-overhead.json (${results.seconds} s)`);
  } finally {
    await providers.close();
  }
}

/** The default, `--quick` and `--full` runs. */
async function mainRun(): Promise<void> {
  const about = await machine();
  log(
    `bench (${mode}) on ${about.cpus} × ${about.cpuModel}, Node ${about.node}, Redis ${about.redis}`,
  );
  log(`planner: ${SIZES.plannerEvents} events…`);
  const planner = await plannerBench(SIZES.plannerEvents);
  const rules = await loadRules(await writeBenchConfig(scratch.file("plan-config"), OPEN_RATES));
  if (!rules.ok) throw new Error("bench config is invalid");
  const perPosition = stepsPerMixPosition(rules.rules, DateTime.utc(), "count");
  const scheduled = await scheduleAndLatency(perPosition);
  const send = await sending();
  const scaleRun = mode === "full" ? await scale(perPosition) : undefined;

  const gitAtEnd = gitState();
  if (gitAtEnd.commit !== about.git.commit || gitAtEnd.dirty !== about.git.dirty)
    log("WARNING: src changed while the bench ran; figures may mix two versions");
  const results = buildResults({
    mode,
    machine: { ...about, gitAtEnd },
    seconds: round((Date.now() - benchStart) / 1000, 1),
    planner,
    scheduled,
    send,
    scaleRun,
  });
  for (const warning of results.warnings) log(`WARNING: ${warning}`);
  console.table(summaryRows(results));
  await mkdir("bench/results", { recursive: true });
  await writeFile("bench/results/latest.json", `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote bench/results/latest.json (${results.seconds} s)`);
  // A missed target is a figure; a failed event or send, or a lost follow-up, is a broken pipeline.
  if (results.warnings.length > 0) process.exitCode = 1;
}

try {
  if (process.argv.includes("--cluster-overhead")) await clusterOverheadRun();
  else if (process.argv.includes("--cluster")) await clusterRun();
  else await mainRun();
} finally {
  // BENCH_KEEP_SCRATCH=1 keeps the worker logs and configs for a look after a failed run.
  if (process.env.BENCH_KEEP_SCRATCH) log(`kept ${scratch.dir}`);
  else await scratch.remove();
}
