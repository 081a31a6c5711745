import type { PassThroughResult, PlainResult } from "./intake-baselines.js";
import type { LatencyResult } from "./latency-bench.js";
import type { plannerBench } from "./planner-bench.js";
import { round } from "./redis-stats.js";
import type { IntakeRun, IntakeSession } from "./schedule-bench.js";
import type { RateCheck, SendRun } from "./send-bench.js";

/** Targets of issue 6. */
/**
 * The targets of the customer-centred state issue: intake against the pass-through worker, bytes
 * per pending follow-up, due → accepted p99, and (with --full) the 1M schedule against addBulk.
 */
export const TARGETS = {
  intakeToPassThrough: 0.35,
  bytesPerPending: 300,
  p99Ms: 250,
  scaleTimeRatio: 0.3,
};
/** Redis's hash-max-listpack-value of the memory variant: compose.yaml's (the default is 64). */
export const LISTPACK_VALUE = 128;

export interface ScheduleFigures {
  readonly plain: PlainResult;
  readonly passThrough: PassThroughResult;
  readonly run: IntakeRun;
  readonly breakdown: Awaited<ReturnType<IntakeSession["memoryBreakdown"]>>;
  readonly latency: LatencyResult;
  readonly listpackRun?: IntakeRun;
  /** The pass-through run again, after both intake runs (not in --quick). */
  readonly passThroughAfter?: PassThroughResult;
}

export interface SendFigures {
  readonly noopOne: SendRun;
  readonly one: SendRun;
  readonly noopTwo: SendRun;
  readonly two: SendRun;
  readonly rate: RateCheck & { readonly run: SendRun };
}

export interface ScaleFigures {
  readonly plain: PlainResult;
  readonly run: IntakeRun;
  readonly latency?: LatencyResult;
}

const ratio = (value: number, baseline: number) => round(value / baseline, 3);

/**
 * What a pending follow-up would cost if our event records were listpacks (values of up to 64
 * bytes, or Redis's hash-max-listpack-value raised): the event records of the breakdown, scaled by
 * the sample record's measured size when rebuilt as a listpack. A projection, not a run.
 */
function listpackProjection(
  run: { followUps: number; bytesPerPending: number },
  breakdown: ScheduleFigures["breakdown"],
) {
  const records = breakdown.classes["fu:e (our records)"]?.bytes ?? 0;
  const recordFactor = breakdown.eventRecord.asListpack / breakdown.eventRecord.bytes;
  const saved = records * (1 - recordFactor);
  return {
    note: "projection: event records scaled by their sample key rebuilt as a listpack",
    eventRecordBytes: breakdown.eventRecord.asListpack,
    bytesPerPending: Math.round(run.bytesPerPending - saved / run.followUps),
  };
}

/** bench/results/latest.json: every figure with its baseline, ratio and target, and what ran. */
export function buildResults(input: {
  mode: string;
  machine: Record<string, unknown>;
  seconds: number;
  planner: Awaited<ReturnType<typeof plannerBench>>;
  scheduled: ScheduleFigures;
  send: SendFigures;
  scaleRun?: ScaleFigures;
}) {
  const { plain, passThrough, run, breakdown, latency, listpackRun, passThroughAfter } =
    input.scheduled;
  // Ours against the pass-through, both run twice in the order pass, ours, ours, pass when there
  // is a second pair (total times, so a drifting machine speed weighs on both alike).
  const second =
    passThroughAfter && listpackRun ? { pass: passThroughAfter, ours: listpackRun } : undefined;
  const oursToPassThrough = ratio(
    passThrough.seconds + (second?.pass.seconds ?? 0),
    run.seconds + (second?.ours.seconds ?? 0),
  );
  const { send, scaleRun, planner } = input;
  const warnings: string[] = [];
  if (run.failedEvents > 0)
    warnings.push(`${run.failedEvents} events failed intake: ${run.firstFailure ?? "?"}`);
  if (run.followUps !== run.expectedFollowUps)
    warnings.push(`${run.followUps} follow-ups scheduled, ${run.expectedFollowUps} expected`);
  for (const [name, r] of Object.entries({ one: send.one, two: send.two, rate: send.rate.run }))
    if (r.failed > 0) warnings.push(`${r.failed} follow-ups failed in the ${name} send run`);
  const results = {
    date: new Date().toISOString(),
    mode: input.mode,
    machine: input.machine,
    seconds: input.seconds,
    warnings,
    planner,
    intake: {
      ...run,
      workerCpuShare: round(run.workerCpuSeconds / run.seconds, 2),
      redisCpuShare: round(run.redisCpuSeconds / run.seconds, 2),
      baseline: {
        what: "plain BullMQ addBulk of the same number of delayed jobs, purchase as payload",
        jobs: plain.jobs,
        seconds: plain.seconds,
        jobsPerSecond: plain.jobsPerSecond,
        eventsPerSecond: Math.round(run.events / plain.seconds),
      },
      ratio: ratio(plain.seconds, run.seconds),
      workerCpuMsPerEvent: round((run.workerCpuSeconds * 1000) / run.events, 3),
      redisCpuMsPerEvent: round((run.redisCpuSeconds * 1000) / run.events, 3),
      target: TARGETS.intakeToPassThrough,
      met: oursToPassThrough >= TARGETS.intakeToPassThrough,
      passThrough: {
        what: "a BullMQ worker process (same concurrency) that only turns each input event into its delayed jobs",
        ...passThrough,
        ratioToBaseline: ratio(plain.seconds, passThrough.seconds),
        oursToPassThrough,
        ...(second && {
          order: "pass-through, ours, ours (hash-max-listpack-value 128), pass-through",
          after: second.pass,
          pairs: [
            ratio(passThrough.seconds, run.seconds),
            ratio(second.pass.seconds, second.ours.seconds),
          ],
        }),
      },
    },
    memory: {
      pending: run.followUps,
      bytesPerPending: run.bytesPerPending,
      bytesPerPurchase: Math.round(run.usedMemoryDelta / run.events),
      usedMemoryDelta: run.usedMemoryDelta,
      baseline: {
        what: "plain BullMQ delayed job carrying the purchase",
        jobs: plain.jobs,
        bytesPerJob: plain.bytesPerJob,
        usedMemoryDelta: plain.usedMemoryDelta,
        sampleJobHash: plain.sampleJobHash,
        breakdown: plain.breakdown,
      },
      ratio: ratio(run.bytesPerPending, plain.bytesPerJob),
      target: TARGETS.bytesPerPending,
      met: run.bytesPerPending <= TARGETS.bytesPerPending,
      breakdown: {
        note: "MEMORY USAGE … SAMPLES 0 of every key, summed per class; bytesPerPending = bytes / pending follow-ups",
        classes: Object.fromEntries(
          Object.entries(breakdown.classes)
            .sort(([, a], [, b]) => b.bytes - a.bytes)
            .map(([name, c]) => [
              name,
              { ...c, bytesPerPending: round(c.bytes / run.followUps, 1) },
            ]),
        ),
        sumOfKeys: Object.values(breakdown.classes).reduce((sum, c) => sum + c.bytes, 0),
        ifListpack: listpackProjection(run, breakdown),
        eventRecord: breakdown.eventRecord,
        storedPurchase: breakdown.storedPurchase,
        scheduleBucket: breakdown.scheduleBucket,
        scheduleIndex: breakdown.scheduleIndex,
      },
      ...(listpackRun && {
        withComposeSettings: {
          what: `the same intake on a Redis with hash-max-listpack-value ${LISTPACK_VALUE}`,
          pending: listpackRun.followUps,
          bytesPerPending: listpackRun.bytesPerPending,
          usedMemoryDelta: listpackRun.usedMemoryDelta,
          ratio: ratio(listpackRun.bytesPerPending, plain.bytesPerJob),
          eventsPerSecond: listpackRun.eventsPerSecond,
        },
      }),
    },
    latency: {
      ...latency,
      target: TARGETS.p99Ms,
      met: latency.p99Ms <= TARGETS.p99Ms,
    },
    send: {
      one: send.one,
      baseline: send.noopOne,
      ratio: ratio(send.one.perSecond, send.noopOne.perSecond),
      rateLimit: send.rate,
    },
    twoWorkers: {
      one: send.one.perSecond,
      two: send.two.perSecond,
      ratio: ratio(send.two.perSecond, send.one.perSecond),
      run: send.two,
      baseline: {
        what: "the same with no-op BullMQ worker processes",
        one: send.noopOne.perSecond,
        two: send.noopTwo.perSecond,
        ratio: ratio(send.noopTwo.perSecond, send.noopOne.perSecond),
        run: send.noopTwo,
      },
    },
    ...(scaleRun && {
      scale: {
        pending: scaleRun.run.followUps,
        events: scaleRun.run.events,
        seconds: scaleRun.run.seconds,
        eventsPerSecond: scaleRun.run.eventsPerSecond,
        usedMemoryDelta: scaleRun.run.usedMemoryDelta,
        bytesPerPending: scaleRun.run.bytesPerPending,
        run: scaleRun.run,
        baseline: scaleRun.plain,
        timeRatio: ratio(scaleRun.plain.seconds, scaleRun.run.seconds),
        timeTarget: TARGETS.scaleTimeRatio,
        timeMet: scaleRun.plain.seconds / scaleRun.run.seconds >= TARGETS.scaleTimeRatio,
        memoryMet: scaleRun.run.bytesPerPending <= TARGETS.bytesPerPending,
        ...(scaleRun.latency && { latency: scaleRun.latency }),
        memoryRatio: ratio(scaleRun.run.bytesPerPending, scaleRun.plain.bytesPerJob),
      },
    }),
  };
  return results;
}

/** The console table: one row per figure. */
export function summaryRows(results: ReturnType<typeof buildResults>) {
  const { intake, memory, latency, send, twoWorkers, planner, scale } = results;
  const row = (
    ours: number | string,
    baseline: number | string,
    ratioValue: number | string,
    target = "-",
    met?: boolean,
  ) => ({
    ours,
    baseline,
    ratio: ratioValue,
    target,
    met: met === undefined ? "-" : met ? "yes" : "NO",
  });
  const rows: Record<string, ReturnType<typeof row>> = {
    "intake events/s": row(intake.eventsPerSecond, intake.baseline.eventsPerSecond, intake.ratio),
    "intake vs pass-through": row(
      intake.eventsPerSecond,
      intake.passThrough.eventsPerSecond,
      intake.passThrough.oursToPassThrough,
      `≥ ${TARGETS.intakeToPassThrough}`,
      intake.met,
    ),
    ...(intake.passThrough.pairs && {
      "  first pair, second pair": row(
        intake.passThrough.pairs[0] ?? "-",
        intake.passThrough.pairs[1] ?? "-",
        "-",
      ),
    }),
    "intake worker CPU ms/event": row(intake.workerCpuMsPerEvent, "-", "-"),
    "bytes / pending follow-up": row(
      memory.bytesPerPending,
      memory.baseline.bytesPerJob,
      memory.ratio,
      `≤ ${TARGETS.bytesPerPending} B`,
      memory.met,
    ),
  };
  rows["bytes / purchase"] = row(memory.bytesPerPurchase, "-", "-");
  if (memory.withComposeSettings) {
    const tuned = memory.withComposeSettings;
    rows[`bytes, listpack ${LISTPACK_VALUE}`] = row(
      tuned.bytesPerPending,
      memory.baseline.bytesPerJob,
      tuned.ratio,
      `≤ ${TARGETS.bytesPerPending} B`,
      tuned.bytesPerPending <= TARGETS.bytesPerPending,
    );
  }
  rows["due→accepted p50 ms"] = row(latency.p50Ms, "-", "-");
  rows["due→accepted p99 ms"] = row(
    latency.p99Ms,
    "-",
    round(latency.p99Ms / TARGETS.p99Ms, 3),
    `≤ ${TARGETS.p99Ms} ms`,
    latency.met,
  );
  rows["sends/s, 1 process"] = row(send.one.perSecond, send.baseline.perSecond, send.ratio);
  rows["rate limit /s"] = row(
    send.rateLimit.achievedPerSecond,
    send.rateLimit.configuredPerSecond,
    send.rateLimit.ratio,
    "±5%",
    send.rateLimit.withinFivePercent,
  );
  rows["rate, busiest 1,000 ms"] = row(
    send.rateLimit.busiestSlidingSecond,
    send.rateLimit.configuredPerSecond,
    round(send.rateLimit.busiestSlidingSecond / send.rateLimit.configuredPerSecond, 3),
  );
  rows["rate, busiest after 1st s"] = row(
    send.rateLimit.busiestSlidingSecondAfterStart,
    send.rateLimit.configuredPerSecond,
    round(send.rateLimit.busiestSlidingSecondAfterStart / send.rateLimit.configuredPerSecond, 3),
    "≤ +5%",
    send.rateLimit.honoured,
  );
  rows["sends/s, 2 vs 1 process"] = row(
    twoWorkers.two,
    twoWorkers.one,
    twoWorkers.ratio,
    `(no-op: ${twoWorkers.baseline.ratio})`,
  );
  rows["planner plans/s"] = row(
    planner.plansPerSecond,
    planner.baselineDateMathPerSecond,
    planner.ratioToBaseline,
  );
  if (scale) {
    rows["1M: schedule s"] = row(
      scale.seconds,
      scale.baseline.seconds,
      scale.timeRatio,
      `≥ ${TARGETS.scaleTimeRatio}`,
      scale.timeMet,
    );
    rows["1M: bytes / pending"] = row(
      scale.bytesPerPending,
      scale.baseline.bytesPerJob,
      scale.memoryRatio,
      `≤ ${TARGETS.bytesPerPending} B`,
      scale.memoryMet,
    );
    if (scale.latency)
      rows["1M: due→accepted p99 ms"] = row(
        scale.latency.p99Ms,
        "-",
        round(scale.latency.p99Ms / TARGETS.p99Ms, 3),
        `≤ ${TARGETS.p99Ms} ms`,
        scale.latency.p99Ms <= TARGETS.p99Ms,
      );
  }
  return rows;
}
