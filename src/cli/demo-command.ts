import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { DateTime } from "luxon";
import { parseEvent } from "../domain/events.js";
import { planFollowUps } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { ADMIN_TOKEN_FILE } from "../embedded-redis.js";
import { EventPublisher } from "../publisher.js";
import { PURCHASE_EVENTS_QUEUE, queuePrefix } from "../queue/names.js";
import { renderPlanTable } from "../reports/plan-table.js";
import { StoreKeys } from "../store/keys.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandConnection, commandEnv, refuseIfMoved } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

/**
 * `followups demo`: publishes a small set of sample purchases (a TV, a laptop, a newspaper, a salon
 * visit, a sofa that is refunded, a TV whose buyer texts STOP) with fresh ids, timed and placed in
 * time zones so that some follow-ups are due at once, and says what will happen when and where to
 * look. A running worker does the rest.
 */

/** Zones tried, in order, for a sample that should go out at once (inside a send window now). */
const ZONES = [
  "Europe/London",
  "America/New_York",
  "America/Los_Angeles",
  "Asia/Tokyo",
  "Australia/Sydney",
  "Asia/Kolkata",
  "Europe/Berlin",
  "America/Sao_Paulo",
  "Pacific/Auckland",
];

type Sample = { title: string; event: Record<string, unknown>; note?: string };

export async function runDemo(
  options: { readonly config: string },
  io: CommandIo,
): Promise<number> {
  const rules = await loadRulesForCommand(options.config);
  const read = await commandEnv();
  const { env } = read;
  const now = DateTime.utc().startOf("second");
  const run = randomBytes(3).toString("hex");
  const id = (name: string) => `demo-${run}-${name}`;
  const samples = demoSamples(rules, now, id);
  const { redis } = await commandConnection(read);
  await refuseIfMoved(redis, env.QUEUE_PREFIX);
  const publisher = new EventPublisher({
    connection: redis,
    prefix: env.QUEUE_PREFIX,
    cluster: env.REDIS_CLUSTER,
    clock: DateTime.utc,
  });
  let listening: string | undefined;
  try {
    for (const sample of samples) await publisher.publish(sample.event as never);
    listening = runningConsole(
      await redis.hgetall(new StoreKeys(env.QUEUE_PREFIX).httpAddresses()),
    );
  } catch (error) {
    throw new CommandError(`could not publish the demo events: ${(error as Error).message}`);
  } finally {
    await publisher.close();
    redis.disconnect();
  }
  const lines = [
    `Published ${samples.length} demo events to ${queuePrefix(env.QUEUE_PREFIX, PURCHASE_EVENTS_QUEUE, env.REDIS_CLUSTER)}:${PURCHASE_EVENTS_QUEUE} (run ${run}); a running worker (npm start) takes them from there.`,
    "",
  ];
  for (const sample of samples) {
    lines.push(`== ${sample.title}`);
    const parsed = parseEvent(sample.event, { now });
    if (parsed.ok && parsed.event.type === "purchase.completed") {
      lines.push(
        renderPlanTable(
          planFollowUps(parsed.event, rules, { previousPurchases: 0 }, now),
        ).trimEnd(),
      );
    }
    if (sample.note) lines.push(sample.note);
    lines.push("");
  }
  // Where a running worker said it listens; else as this command's HTTP_HOST and HTTP_PORT say.
  const consoleUrl = `${env.PUBLIC_URL ?? listening ?? `http://${env.HTTP_HOST === "0.0.0.0" ? "127.0.0.1" : env.HTTP_HOST}:${env.HTTP_PORT}`}/console${env.PUBLIC_URL || listening ? "" : " (no running worker has said where it listens: HTTP_HOST and HTTP_PORT as set here)"}`;
  lines.push(
    "Where to look:",
    env.SMTP_URL
      ? "  email goes out through SMTP_URL"
      : `  messages due now are written to the outbox: ${path.resolve(env.OUTBOX_DIR)}`,
    `  the console: ${consoleUrl} (${consoleNote(await consoleState(listening))})`,
    `  a customer's timeline: followups customer ${id("ana")}`,
    "  what is coming: followups schedule",
  );
  io.out(`${lines.join("\n")}\n`);
  return EXIT.ok;
}

/** How long the demo waits for the worker's console to answer. */
const CONSOLE_PROBE_MS = 2_000;

/**
 * Whether the console of the worker listening at `address` is on (it answers `/console`: a
 * sign-in page, a redirect, a 503 while Redis is away) or off (404: the worker has no
 * ADMIN_TOKENS); undefined when no worker said where it listens, or it did not answer.
 */
async function consoleState(address: string | undefined): Promise<"on" | "off" | undefined> {
  if (address === undefined) return undefined;
  try {
    const response = await fetch(`${address}/console`, {
      redirect: "manual",
      signal: AbortSignal.timeout(CONSOLE_PROBE_MS),
    });
    await response.body?.cancel();
    return response.status === 404 ? "off" : "on";
  } catch {
    return undefined;
  }
}

/** What the demo says of the console, as the worker's answer has it (consoleState). */
function consoleNote(state: "on" | "off" | undefined): string {
  if (state === "off")
    return "off on that worker: set ADMIN_TOKENS in the worker's environment to switch it on";
  // An embedded deployment's worker takes its token from the file (embeddedAdminToken).
  if (existsSync(ADMIN_TOKEN_FILE)) return `sign in with the token in ${ADMIN_TOKEN_FILE}`;
  if (state === "on") return "sign in with one of the worker's ADMIN_TOKENS tokens";
  return "a worker started with ADMIN_TOKENS serves it";
}

/** The first address a running worker renewed (StoreKeys.httpAddresses), if any holds still. */
function runningConsole(addresses: Record<string, string>): string | undefined {
  const now = Date.now();
  return Object.entries(addresses)
    .filter(([, until]) => Number(until) > now)
    .map(([address]) => address)
    .sort()[0];
}

/** The demo's events, in the order they are published. */
export function demoSamples(rules: RuleSet, now: DateTime, id: (name: string) => string): Sample[] {
  const iso = (time: DateTime) => time.toISO({ suppressMilliseconds: true }) ?? "";
  const customer = (
    name: string,
    full: string,
    zone: string,
    extra: Record<string, unknown> = {},
  ) => ({
    id: id(name),
    name: full,
    email: `${name}.${id("").split("-")[1]}@example.com`,
    phone: `+447400${String(createHash("sha256").update(name).digest().readUInt32BE(0) % 1_000_000).padStart(6, "0")}`,
    timezone: zone,
    locale: "en-GB",
    consent: { email: true, sms: true },
    ...extra,
  });
  const purchase = (
    name: string,
    occurredAt: DateTime,
    who: Record<string, unknown>,
    items: { sku: string; name: string; category: string; price: string }[],
  ) => ({
    type: "purchase.completed",
    id: id(`${name}-purchase`),
    occurredAt: iso(occurredAt),
    orderId: id(`${name}-order`),
    customer: who,
    items: items.map((item) => ({
      sku: item.sku,
      name: item.name,
      category: item.category,
      quantity: 1,
      unitPrice: item.price,
    })),
    total: {
      amount: items.reduce((sum, item) => sum + Number(item.price), 0).toFixed(2),
      currency: "GBP",
    },
    store: { id: "demo-store", name: "Corner Electronics", timezone: "Europe/London" },
  });
  /**
   * The sample in the first zone in which the event has a step due within two minutes, said to be
   * due now. When no zone is inside the send window (the shipped SMS window is shut on Sundays
   * everywhere), the first zone, and the title and a note say that it waits for the window.
   */
  const dueNow = (
    title: string,
    what: string,
    build: (zone: string) => Record<string, unknown>,
  ): Sample => {
    for (const zone of ZONES) {
      const event = build(zone);
      const parsed = parseEvent(event, { now });
      if (!parsed.ok || parsed.event.type !== "purchase.completed") continue;
      const plan = planFollowUps(parsed.event, rules, { previousPurchases: 0 }, now);
      if (plan.steps.some((step) => Date.parse(step.dueAt) <= now.plus({ minutes: 2 }).toMillis()))
        return { title: `${title}: ${what} is due now`, event };
    }
    return {
      title: `${title}: ${what} is due, but no time zone is inside its send window now`,
      event: build(ZONES[0] ?? "Europe/London"),
      note: "It goes out when its send window opens (sendWindows in the rules), at the time above.",
    };
  };
  const tv = {
    sku: "TV-OLED-55",
    name: "OLED TV 55 inch",
    category: "televisions",
    price: "1299.00",
  };
  return [
    dueNow("Ana bought a TV three months ago", "her check-in text", (zone) =>
      purchase("ana", now.setZone(zone).minus({ months: 3 }), customer("ana", "Ana Novak", zone), [
        tv,
      ]),
    ),
    dueNow("Jonas bought a laptop two weeks ago", "his accessories offer", (zone) =>
      purchase(
        "jonas",
        now.setZone(zone).minus({ days: 14 }),
        customer("jonas", "Jonas Weber", zone),
        [{ sku: "LAP-14", name: "Laptop 14 inch", category: "laptops", price: "899.00" }],
      ),
    ),
    {
      title: "Reader bought a newspaper: nothing, ever",
      event: purchase("reader", now, customer("reader", "Rita Reader", "Europe/London"), [
        { sku: "NEWS", name: "The Daily", category: "newspapers", price: "2.50" },
      ]),
    },
    dueNow("Priya had her hair cut two hours ago", "her thank-you", (zone) =>
      purchase(
        "priya",
        now.minus({ hours: 2 }).setZone(zone),
        customer("priya", "Priya Shah", zone),
        [{ sku: "CUT", name: "Cut and colour", category: "salon", price: "85.00" }],
      ),
    ),
    {
      title: "Sam bought a sofa today…",
      event: purchase("sam", now, customer("sam", "Sam Carter", "Europe/London"), [
        { sku: "SOFA-3", name: "Three-seat sofa", category: "furniture", price: "749.00" },
      ]),
    },
    {
      title: "…and returned it: the refund cancels Sam's follow-ups",
      event: {
        type: "purchase.refunded",
        id: id("sam-refund"),
        occurredAt: iso(now),
        orderId: id("sam-order"),
      },
      note: "Both of Sam's follow-ups are cancelled (reason: refunded).",
    },
    {
      title: "Lee bought a TV today…",
      event: purchase("lee", now, customer("lee", "Lee Park", "Europe/London"), [tv]),
    },
    {
      title: "…and texted STOP",
      event: {
        type: "customer.unsubscribed",
        id: id("lee-stop"),
        occurredAt: iso(now),
        customerId: id("lee"),
        channels: ["sms"],
      },
      note: "No text goes to Lee any more: the check-in in three months will be skipped (opted out).",
    },
  ];
}
