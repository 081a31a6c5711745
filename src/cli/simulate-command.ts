import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { DateTime } from "luxon";
import { fileThankYou, groupKeptForMs, type ThankYouGroup } from "../domain/coalesce.js";
import { ConsentTimeline } from "../domain/consent-timeline.js";
import {
  type DeliveryReplay,
  DeliveryReplayer,
  type ReplayStep,
  replayKey,
} from "../domain/delivery-simulation.js";
import { describeProblems, type PurchaseCompleted, parseEvent } from "../domain/events.js";
import { type Plan, type PlannedStep, planFollowUps } from "../domain/planner.js";
import { hasCooldowns, type StepKind, underCooldown } from "../domain/rules.js";
import { formatMicros } from "../domain/spend.js";
import { zoneFor } from "../domain/time-zone.js";
import { COALESCED_AFTER_MS } from "../queue/names.js";
import { formatTable } from "../reports/text-table.js";
import { FILINGS_KEEP_MS, MAX_JOINED } from "../store/thank-you-groups.js";
import { createMessageComposer } from "../templates/compose-message.js";
import { loadConfigForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT, jsonProblem, parseJsonLine } from "./io.js";
import { jsonOutput, terminalText } from "./operator-text.js";
import { stepCost, stepMeasure } from "./step-measure.js";

export interface SimulateOptions {
  readonly config: string;
  readonly json?: boolean;
  /** Print every planned step as NDJSON instead of the summary (no delivery replay). */
  readonly steps?: boolean;
}

/** A purchase read, with its plan, waiting for the replay to reach when it happened. */
interface Arrival {
  /** Its occurredAt (epoch ms). */
  readonly at: number;
  readonly customerId: string;
  readonly plan: { readonly eventId: string; readonly steps: readonly ArrivalStep[] };
}

/** An arrival the replay took in. */
const DONE: Arrival = { at: 0, customerId: "", plan: { eventId: "", steps: [] } };

/** What the replay, the thank-you groups and the counts read of a planned step. */
type CountedStep = Pick<
  PlannedStep,
  "stepId" | "kind" | "channel" | "dueAt" | "coalesceUntil" | "fallbackOf"
>;

/** A planned step kept for the replay: with its replayed form, but for a fallback. */
type ArrivalStep = CountedStep & { readonly replay?: ReplayStep };

interface BadLine {
  readonly line: number;
  readonly problem: string;
}

/** How many bad lines the readable report lists one by one. */
const LISTED_BAD_LINES = 20;
/**
 * How many bad lines after one that opens a JSON document (its first line cut short, the next bad)
 * make the file a pretty-printed document: an event read before then makes it NDJSON whose first
 * event was broken over lines, simulated with its bad lines listed.
 */
const PRETTY_LOOKAHEAD = 1_000;

/** Discount codes in a simulated SMS are as long as real ones; their letters do not matter. */
const SIMULATION_DISCOUNT_SECRET = "simulate-only-not-a-real-discount-secret";

/**
 * `followups simulate PURCHASES.ndjson`: plans every purchase as if it had just arrived (now =
 * its occurredAt) and reports the resulting volume per ISO week, channel and kind. Earlier lines
 * of the same customer count as history, so repeat-customer rules fire as they would live. A line
 * the intake would refuse, such as one that happens more than a day from now, is a bad line.
 *
 * The planned steps are replayed in due order as the worker would send them (send windows,
 * grace periods, frequency caps, budgets, coalesced thank-yous: DeliveryReplayer), once the file
 * is read: the purchases are taken in by their occurredAt (a file need not be in time order), each
 * after the replay up to its arrival, before it is filed with a thank-you group, giving messages, SMS segments and
 * cost per month and channel, and sent, waited and skipped per channel and kind. With `steps`,
 * every planned step is streamed as a line of NDJSON instead, and nothing is replayed, so memory
 * stays bounded by the number of customers.
 */
export async function runSimulate(
  file: string,
  options: SimulateOptions,
  io: CommandIo,
): Promise<number> {
  if (options.steps && options.json) {
    throw new CommandError("--steps prints NDJSON already; leave out --json", EXIT.usage);
  }
  const { rules, templates } = await loadConfigForCommand(options.config);
  const compose = createMessageComposer(() => templates, {
    discountSecret: SIMULATION_DISCOUNT_SECRET,
    // A render cut off by a busy machine is retried by the worker, not failed: measured in CPU time.
    renderClock: "cpu",
  });
  const clockNow = DateTime.utc();
  const size = file === "-" ? undefined : await fileSize(file);
  const input = file === "-" ? process.stdin : createReadStream(file);
  const progress = size && io.interactive ? progressBar(size, io) : undefined;

  // Cooldowns need each customer's planned steps per rule and kind, as the worker keeps them.
  const cooldowns = hasCooldowns(rules);
  const recentByCustomer = new Map<
    string,
    { byRule: Map<string, number[]>; byKind: Map<StepKind, number[]> }
  >();
  function rememberRecent(customerId: string, steps: readonly PlannedStep[]): void {
    if (steps.length === 0) return;
    const recent = recentByCustomer.get(customerId) ?? { byRule: new Map(), byKind: new Map() };
    // Every step's due time: a later purchase is held to each of them, as the worker holds it.
    for (const step of steps) {
      const at = Date.parse(step.dueAt);
      const held = underCooldown(rules, step);
      if (held.byRule)
        recent.byRule.set(step.ruleId, [...(recent.byRule.get(step.ruleId) ?? []), at]);
      if (held.byKind) recent.byKind.set(step.kind, [...(recent.byKind.get(step.kind) ?? []), at]);
    }
    recentByCustomer.set(customerId, recent);
  }

  const measure = stepMeasure(rules, compose);
  // --steps: numbers that already have a planned SMS (in file order), so only the first carries
  // the opt-out line. The replay knows the real order of sends and keeps its own.
  const textedInFile = new Set<string>();

  const volume = new Map<string, number>();
  const weekZone = zoneFor(rules.defaults.timezone);
  const purchasesByCustomer = new Map<string, number>();
  // What each purchase stated of consent: a later one's stands at send time, as in the worker.
  const consents = new ConsentTimeline();
  // What goes out, replayed as the purchases arrive by their occurredAt (not with --steps, which
  // replays nothing).
  const replayer = options.steps
    ? undefined
    : new DeliveryReplayer(rules, undefined, consents, COALESCED_AFTER_MS);
  const bad: BadLine[] = [];
  let badLines = 0;
  let lineNumber = 0;
  let bytes = 0;
  let planned = 0;
  let fallbacks = 0;
  let purchases = 0;
  // Each customer's open thank-you group (rules with `coalesce`), as the worker keeps it: its
  // leader's thank-you (replayKey) and when that was planned, and until when the group lasts.
  const groups = new Map<
    string,
    Omit<ThankYouGroup, "closesAt"> & { leader: string; due: number; expires: number }
  >();
  // The purchases read, for the replay to take in by when they happened: a file need not be in
  // time order (the shipped sample is not), and the replay cannot go back in time.
  const arrivals: Arrival[] = [];
  // Lines read as events (purchases or not): a file without one could not be simulated at all.
  let events = 0;
  // The first line with text, while it is the only one read: one that begins a JSON document and
  // does not end it, followed by another bad line, is a pretty-printed document, not NDJSON.
  let opening: { line: number; cutShort: boolean; alone: boolean } | "past" | undefined;
  // The line that opens what looks like a pretty-printed document, while no event came after it.
  let pretty: number | undefined;
  let sincePretty = 0;
  const refusePretty = (line: number): never => {
    progress?.done();
    throw new CommandError(
      `${inputName(file)}: line ${line} begins a JSON document that goes on over the next lines (pretty-printed JSON?); expected one JSON event per line (NDJSON): put each event on a line of its own (jq -c)`,
    );
  };
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    lineNumber++;
    bytes += Buffer.byteLength(line) + 1;
    if (lineNumber % 2000 === 0) progress?.update(bytes);
    if (line.trim() === "") continue;
    const problem = await planLine(line);
    if (opening === undefined) {
      opening = {
        line: lineNumber,
        cutShort: typeof problem === "string" && opensDocument(line),
        // Only "{" or "[": what comes next is inside it, whatever it looks like.
        alone: /^[{[]$/.test(line.trim()),
      };
    } else if (opening !== "past") {
      // (Not when this line begins a document of its own: two cut lines of NDJSON.)
      const continues = /^[{[]$/.test(line.trim().slice(0, 1)) ? opening.alone : true;
      if (opening.cutShort && typeof problem === "string" && continues) pretty = opening.line;
      opening = "past";
    }
    // An event read after it: an NDJSON file whose first event was broken over lines, not a
    // document. None read in PRETTY_LOOKAHEAD lines (or at the end): refused as one.
    if (pretty !== undefined) {
      if (typeof problem !== "string") pretty = undefined;
      else if (++sincePretty >= PRETTY_LOOKAHEAD) refusePretty(pretty);
    }
    if (typeof problem !== "string") {
      events++;
      continue;
    }
    badLines++;
    // --steps keeps memory bounded: the first bad lines are listed, the rest only counted.
    if (!options.steps || bad.length < LISTED_BAD_LINES) bad.push({ line: lineNumber, problem });
  }
  if (pretty !== undefined) refusePretty(pretty);
  progress?.done();
  if (replayer) {
    // By arrival, file order among equals (a stable sort), each after what went out before it.
    arrivals.sort((a, b) => a.at - b.at);
    for (const [index, arrival] of arrivals.entries()) {
      // Let go once in the replay (its steps are the replay's now).
      arrivals[index] = DONE;
      replayer.runUntil(arrival.at);
      const { plan, joined } = coalesce(arrival.customerId, arrival.at, arrival.plan);
      replayArrival(plan, joined);
      count(plan);
    }
    arrivals.length = 0;
  }

  async function planLine(line: string): Promise<string | undefined> {
    // Refused as publish and POST /v1/events refuse it: not JSON, or a key given twice.
    const read = parseJsonLine(line);
    if ("problem" in read) return read.problem;
    const parsed = parseEvent(read.value, { now: clockNow });
    if (!parsed.ok) return describeProblems(parsed.problems).replaceAll("\n", "; ");
    const event = parsed.event;
    if (event.type !== "purchase.completed") return undefined;
    purchases++;
    consents.note(event);
    const previousPurchases = purchasesByCustomer.get(event.customer.id) ?? 0;
    purchasesByCustomer.set(event.customer.id, previousPurchases + 1);
    const now = DateTime.fromISO(event.occurredAt, { setZone: true });
    const recent = cooldowns ? recentByCustomer.get(event.customer.id) : undefined;
    const fromPlanner = planFollowUps(
      event,
      rules,
      { previousPurchases, ...(recent && { recent }) },
      now,
    );
    if (cooldowns) rememberRecent(event.customer.id, fromPlanner.steps);
    if (replayer) {
      arrivals.push(await arrivalOf(event, fromPlanner));
      return undefined;
    }
    const { plan } = coalesce(event.customer.id, Date.parse(event.occurredAt), fromPlanner);
    await printSteps(event, plan);
    count(plan);
    return undefined;
  }

  /** Counts a purchase's planned steps (without the thank-yous that joined another's). */
  function count(plan: { readonly steps: readonly CountedStep[] }): void {
    for (const step of plan.steps) {
      // Sent only when its call is not answered, which no simulation can know: counted apart.
      if (step.fallbackOf) {
        fallbacks++;
        continue;
      }
      // In the rules' default zone, as the months are (a Monday morning east of UTC is Sunday there).
      const week =
        DateTime.fromISO(step.dueAt, { zone: weekZone }).toISOWeekDate()?.slice(0, 8) ?? "?";
      const key = `${week}\t${step.channel}\t${step.kind}`;
      volume.set(key, (volume.get(key) ?? 0) + 1);
      planned++;
    }
  }

  /**
   * One thank-you for a customer's purchases within a rule's `coalesce` window, as the worker
   * files them (each purchase arrives at its occurredAt; a group closes once its leader's thank-you
   * went out in the replay, or with --steps, which replays nothing, once it was due): a thank-you
   * that joins an earlier one is not planned (counted apart), and waits behind the leader's in the
   * replay, as the worker holds it (COALESCED_AFTER_MS after it).
   */
  function coalesce<
    S extends CountedStep,
    P extends { readonly eventId: string; readonly steps: readonly S[] },
  >(
    customerId: string,
    purchasedAt: number,
    plan: P,
  ): { plan: P; joined: { step: S; dueAt: number; leader: string }[] } {
    const joined: { step: S; dueAt: number; leader: string }[] = [];
    for (const step of plan.steps) {
      if (step.coalesceUntil === undefined) continue;
      const dueAt = Date.parse(step.dueAt);
      // A group ends a while after the last purchase filed with it (lib/thank-you-group.lua).
      const open = groups.get(customerId);
      const group = open && open.expires > purchasedAt ? open : undefined;
      const closesAt = !group
        ? Number.POSITIVE_INFINITY
        : replayer
          ? (replayer.wentAt(group.leader) ?? Number.POSITIVE_INFINITY)
          : group.due;
      const windowMs = Date.parse(step.coalesceUntil) - purchasedAt;
      const filed = fileThankYou(
        group && { ...group, closesAt },
        purchasedAt,
        purchasedAt,
        windowMs,
        MAX_JOINED,
      );
      const keepUntil =
        purchasedAt +
        Math.max(
          FILINGS_KEEP_MS,
          groupKeptForMs(dueAt, purchasedAt, rules.gracePeriods[step.kind].toMillis()),
        );
      if (filed === "lead") {
        groups.set(customerId, {
          start: purchasedAt,
          until: Date.parse(step.coalesceUntil),
          members: 0,
          leader: replayKey(plan.eventId, step.stepId),
          due: dueAt,
          expires: keepUntil,
        });
        continue;
      }
      if (!group) continue;
      const members = group.members + (filed === "joined" ? 1 : 0);
      groups.set(customerId, {
        ...group,
        members,
        expires: Math.max(group.expires, keepUntil),
      });
      if (filed === "joined")
        joined.push({
          step,
          dueAt: Math.max(dueAt, group.due + COALESCED_AFTER_MS),
          leader: group.leader,
        });
    }
    if (joined.length === 0) return { plan, joined };
    const ids = new Set(joined.map((j) => j.step.stepId));
    return { plan: { ...plan, steps: plan.steps.filter((step) => !ids.has(step.stepId)) }, joined };
  }

  async function printSteps(event: PurchaseCompleted, plan: Plan): Promise<void> {
    if (plan.steps.length === 0) return;
    let chunk = "";
    for (const step of plan.steps) {
      const phone = event.customer.phone;
      const first = step.channel === "sms" && phone !== undefined && !textedInFile.has(phone);
      if (step.channel === "sms" && phone !== undefined) textedInFile.add(phone);
      const segments =
        step.channel === "sms" ? await measure.segments(event, plan, step, first) : null;
      const cost = stepCost(rules, event, step, segments);
      chunk += jsonOutput({
        eventId: plan.eventId,
        stepId: step.stepId,
        ruleId: step.ruleId,
        kind: step.kind,
        channel: step.channel,
        dueAt: step.dueAt,
        localDueAt: step.localDueAt,
        segments,
        cost: cost === null ? null : formatMicros(cost, rules.defaults.currency),
      });
    }
    io.out(chunk);
    await io.drained?.();
  }

  /** A purchase as the replay takes it in: its steps, each measured as the worker renders it. */
  async function arrivalOf(event: PurchaseCompleted, plan: Plan): Promise<Arrival> {
    // The steps of one purchase share what the send-time guard reads of it (not its items).
    const guardView = {
      customer: event.customer,
      occurredAt: event.occurredAt,
      ...(event.store && { store: event.store }),
    };
    const steps: ArrivalStep[] = [];
    for (const step of plan.steps) {
      const counted: CountedStep = {
        stepId: step.stepId,
        kind: step.kind,
        channel: step.channel,
        dueAt: step.dueAt,
        ...(step.coalesceUntil !== undefined && { coalesceUntil: step.coalesceUntil }),
        ...(step.fallbackOf !== undefined && { fallbackOf: step.fallbackOf }),
      };
      if (step.fallbackOf) {
        steps.push(counted);
        continue;
      }
      const replay: ReplayStep = {
        eventId: plan.eventId,
        stepId: step.stepId,
        kind: step.kind,
        channel: step.channel,
        purpose: step.purpose,
        dueAt: Date.parse(step.dueAt),
        ...(step.graceEndsAt && { graceEndsAt: Date.parse(step.graceEndsAt) }),
        event: guardView,
        ...(step.channel === "sms" && {
          smsSegments: await measure.smsVariants(event, plan, step),
        }),
      };
      steps.push({ ...counted, replay });
    }
    return {
      at: Date.parse(event.occurredAt),
      customerId: event.customer.id,
      plan: { eventId: plan.eventId, steps },
    };
  }

  function replayArrival(
    plan: { readonly steps: readonly ArrivalStep[] },
    joined: readonly { step: ArrivalStep; dueAt: number; leader: string }[],
  ): void {
    if (!replayer) return;
    for (const { replay } of plan.steps) if (replay) replayer.add(replay);
    // Held behind the leader's, as intake holds it (no longer late then: no grace end of its own).
    for (const { step, dueAt, leader } of joined) {
      if (!step.replay) continue;
      const { graceEndsAt: _late, ...held } = step.replay;
      replayer.add({ ...held, dueAt, joinedTo: leader });
    }
  }

  const weeks = [...volume.entries()]
    .map(([key, count]) => {
      const [week = "", channel = "", kind = ""] = key.split("\t");
      return { week, channel, kind, count };
    })
    .sort(
      (a, b) =>
        a.week.localeCompare(b.week) ||
        a.channel.localeCompare(b.channel) ||
        a.kind.localeCompare(b.kind),
    );

  // Bad lines beside events are reported and the rest simulated; a file of bad lines only is not.
  const unread = (): number => {
    if (events > 0 || badLines === 0) return EXIT.ok;
    io.err(
      `${inputName(file)}: no event could be read, all ${badLines} line${badLines === 1 ? " is" : "s are"} bad; expected one JSON event per line (NDJSON)\n`,
    );
    return EXIT.invalid;
  };

  if (!replayer) {
    if (badLines > 0) printBadLines(bad, badLines, io.err, "(simulate --json lists all)");
    return unread();
  }
  const replay = replayer.finish();
  const coalesced = replay.coalesced;
  const delivery = deliveryView(replay, rules.defaults.currency);

  if (options.json) {
    io.out(
      jsonOutput(
        {
          lines: lineNumber,
          purchases,
          planned,
          fallbacks,
          coalesced,
          invalid: bad,
          weeks,
          delivery,
        },
        2,
      ),
    );
  } else {
    io.out(
      `${purchases} purchases read from ${lineNumber} lines, ${planned} follow-ups planned${fallbacks > 0 ? ` (and ${fallbacks} fallbacks, sent only when a call is not answered)` : ""}${coalesced > 0 ? `; ${coalesced} thank-you${coalesced === 1 ? "" : "s"} joined an earlier purchase's (coalesce)` : ""}\n\n`,
    );
    io.out(
      weeks.length === 0
        ? "No follow-ups planned.\n"
        : formatTable(
            ["WEEK", "CHANNEL", "KIND", "COUNT"],
            weeks.map((w) => [w.week, w.channel, w.kind, String(w.count)]),
          ),
    );
    if (weeks.length > 0) printDelivery(delivery, io);
    if (badLines > 0) printBadLines(bad, badLines, io.out, "(use --json for all)");
  }
  return unread();
}

/** How a message names the input: its path, or standard input for "-". */
function inputName(file: string): string {
  return file === "-" ? "standard input" : file;
}

/** A line that is not JSON because it begins an object or array and ends before closing it. */
function opensDocument(line: string): boolean {
  const text = line.trim();
  if (!text.startsWith("{") && !text.startsWith("[")) return false;
  try {
    JSON.parse(text);
    return false;
  } catch (error) {
    return jsonProblem(text, error as Error).startsWith("not valid JSON, cut short");
  }
}

/** The replay as printed: money as decimal strings in the default currency. */
function deliveryView(replay: DeliveryReplay, currency: string) {
  return {
    currency,
    months: replay.months.map((month) => ({
      month: month.month,
      channel: month.channel,
      messages: month.messages,
      segments: month.channel === "sms" ? month.segments : null,
      cost: month.costMicros === null ? null : formatMicros(month.costMicros, currency),
      unpriced: month.unpriced,
    })),
    outcomes: replay.outcomes,
  };
}

function printDelivery(delivery: ReturnType<typeof deliveryView>, io: CommandIo): void {
  io.out(
    "\nDelivery, as the worker would send them (send windows, grace periods, frequency caps, budgets; fallbacks not included):\n\n",
  );
  if (delivery.months.length > 0) {
    io.out(
      formatTable(
        ["MONTH", "CHANNEL", "MESSAGES", "SEGMENTS", `COST (${delivery.currency})`],
        delivery.months.map((m) => [
          m.month,
          m.channel,
          String(m.messages),
          m.segments === null ? "-" : String(m.segments),
          `${m.cost ?? "-"}${m.unpriced > 0 ? ` (+${m.unpriced} unpriced)` : ""}`,
        ]),
      ),
    );
    io.out("\n");
  }
  io.out(
    formatTable(
      ["CHANNEL", "KIND", "SENT", "WAITED", "SKIPPED"],
      delivery.outcomes.map((o) => {
        const skipped = Object.entries(o.skipped).map(([code, count]) => `${count} ${code}`);
        return [o.channel, o.kind, String(o.sent), String(o.waited), skipped.join(", ") || "-"];
      }),
    ),
  );
}

function printBadLines(
  bad: readonly BadLine[],
  count: number,
  write: (text: string) => void,
  more: string,
): void {
  write(`\n${count} bad line${count === 1 ? "" : "s"} (not planned):\n`);
  for (const entry of bad.slice(0, LISTED_BAD_LINES))
    write(terminalText(`  line ${entry.line}: ${entry.problem}\n`));
  if (count > LISTED_BAD_LINES) write(`  … and ${count - LISTED_BAD_LINES} more ${more}\n`);
}

async function fileSize(file: string): Promise<number> {
  let found: Awaited<ReturnType<typeof stat>>;
  try {
    found = await stat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CommandError(`${file}: ${code === "ENOENT" ? "file not found" : String(error)}`);
  }
  if (!found.isFile())
    throw new CommandError(
      `${file}: expected a file of purchases (NDJSON), got a directory or device`,
    );
  return found.size;
}

function progressBar(total: number, io: CommandIo) {
  const width = 30;
  return {
    update(done: number) {
      const share = Math.min(1, done / total);
      const filled = Math.round(share * width);
      io.err(
        `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%`,
      );
    },
    done() {
      io.err(`\r${" ".repeat(width + 8)}\r`);
    },
  };
}
