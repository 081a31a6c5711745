import { mkdir } from "node:fs/promises";
import { DateTime } from "luxon";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { eventJobId } from "../../src/queue/names.js";
import { shardScope } from "../../src/store/keys.js";
import { replyId, StepReplies } from "../../src/store/step-replies.js";
import { hasChromium, launchChromium, seriousA11yViolations } from "../support/browser.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";

/**
 * The operator console in a real Chromium (Debian's package, driven by playwright-core): sign-in,
 * search, cancel, retry, erase, the CSRF and session checks, and axe-core on every page.
 */

const TOKEN = "console-token-0123456789";
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS;
/** Only by choice: a machine without Chromium fails these tests rather than passing them silently. */
const SKIP = process.env.FOLLOWUPS_SKIP_BROWSER === "1";

let browser: Browser | undefined;
let pipeline: PipelineHarness | undefined;

beforeAll(async () => {
  if (!hasChromium && !SKIP) {
    throw new Error(
      "Chromium is not installed at /usr/bin/chromium: apt-get install chromium (or set CHROMIUM_PATH, or FOLLOWUPS_SKIP_BROWSER=1 to skip these tests)",
    );
  }
  if (!SKIP) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const iso = (time: DateTime) => time.toISO({ suppressMilliseconds: true }) ?? "";

async function signedIn(p: PipelineHarness): Promise<Page> {
  const context = await (browser as Browser).newContext();
  const page = await context.newPage();
  await page.goto(`${p.worker?.httpAddress}/console`);
  await page.getByLabel("Admin token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

async function expectAccessible(page: Page, name: string): Promise<void> {
  const violations = await seriousA11yViolations(page);
  expect(
    violations.map(
      (v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`,
    ),
    `serious accessibility problems on ${name}`,
  ).toEqual([]);
  if (SCREENSHOTS) {
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: `${SCREENSHOTS}/console-${name}.png`, fullPage: true });
  }
}

/** A place on the page, as lines are read: the line (its bottom) and x. */
type Drawn = {
  piece: string;
  first: { line: number; x: number };
  last: { line: number; x: number };
};

/**
 * Where each of `pieces` (found in this order in the element's text) is drawn: its first and last
 * characters in reading order, so that a piece split apart or reversed by a bidi control shows.
 */
async function drawnAt(page: Page, selector: string, pieces: readonly string[]): Promise<Drawn[]> {
  // Run in the page (the tests are compiled without the DOM's types).
  return page.evaluate(
    `(${DRAWN_AT})(document.querySelector(${JSON.stringify(selector)}), ${JSON.stringify(pieces)})`,
  ) as Promise<Drawn[]>;
}

const DRAWN_AT = `(element, wanted) => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const nodes = [];
  let text = "";
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    nodes.push({ node, start: text.length });
    text += node.textContent;
  }
  const at = (offset) => {
    const found = [...nodes].reverse().find((n) => n.start <= offset);
    return [found.node, offset - found.start];
  };
  let from = 0;
  return wanted.map((piece) => {
    const index = text.indexOf(piece, from);
    if (index < 0) throw new Error('"' + piece + '" is not in "' + text + '"');
    from = index + piece.length;
    // Where its first and last characters are drawn, as lines are read: by line, then from the left.
    let first;
    let last;
    // One character at a time: a range's rectangles cover whole runs, not its characters.
    for (let i = index; i < index + piece.length; i++) {
      const range = document.createRange();
      range.setStart(...at(i));
      range.setEnd(...at(i + 1));
      for (const rect of range.getClientRects()) {
        if (rect.width === 0) continue;
        const line = Math.round(rect.bottom);
        if (!first || line < first.line || (line === first.line && rect.left < first.x))
          first = { line, x: rect.left };
        if (!last || line > last.line || (line === last.line && rect.right > last.x))
          last = { line, x: rect.right };
      }
    }
    return { piece, first, last };
  });
}`;

/** The pieces not drawn after the one before them (left to right, line by line, none overlapping). */
function outOfOrder(drawn: readonly Drawn[]): string[] {
  return drawn
    .filter((here, i) => {
      const before = drawn[i - 1];
      if (before === undefined) return false;
      const lines = here.first.line - before.last.line;
      return Math.abs(lines) <= 2 ? before.last.x > here.first.x + 0.5 : lines < 0;
    })
    .map((d) => `${d.piece} (drawn from ${Math.round(d.first.x)} to ${Math.round(d.last.x)})`);
}

// A worker, a browser and many pages per test: slower than the default 20 s allows on a busy machine.
describe.skipIf(SKIP)("the operator console in a browser", { timeout: 60_000 }, () => {
  it("signs in, finds a customer by email, cancels a step, retries a failure and erases", async () => {
    pipeline = await startPipeline("console", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    // With milliseconds, as events may carry them: the console shows local times to the minute.
    const now = DateTime.utc().set({ millisecond: 250 });
    await p.publisher.publish(
      purchaseInput({
        id: "evt-console",
        orderId: "ord-console",
        occurredAt: iso(now),
        customer: { id: "cus-console", email: "console.customer@example.com", name: "Carla Ortiz" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    // The thank-you fails once for good; the check-in waits three months.
    p.sink.failNext({ code: 550, message: "mailbox unavailable" });
    await promoteStep(p, "evt-console", "big-ticket.thank-you");
    await eventually(async () => {
      const record = (await p.store.stepRecords("evt-console", ["big-ticket.thank-you"])).get(
        "big-ticket.thank-you",
      );
      return record?.state === "failed" ? true : undefined;
    }, "the thank-you to fail");

    // Without a session every page leads to the sign-in; a wrong token is refused.
    const anonymous = await (browser as Browser).newPage();
    await anonymous.goto(`${base}/console/customers/cus-console`);
    expect(new URL(anonymous.url()).pathname).toBe("/console/sign-in");
    await expectAccessible(anonymous, "sign-in");
    await anonymous.getByLabel("Admin token").fill("not-the-token-at-all");
    await anonymous.getByRole("button", { name: "Sign in" }).click();
    await expect(anonymous.getByRole("alert").textContent()).resolves.toContain(
      "not one of the admin tokens",
    );
    await anonymous.close();

    const page = await signedIn(p);
    expect(await page.textContent("body")).toContain("Signed in as dana");
    const overview = await page.request.get(`${base}/console`);
    expect(overview.headers()["content-security-policy"]).toContain("default-src 'none'");
    await expectAccessible(page, "overview");

    // Search by email: straight to the timeline, with the customer's local due times.
    await page.getByRole("link", { name: "Search" }).click();
    await page.getByLabel(/Customer id, email address/).fill("Console.Customer@example.com");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByRole("heading", { name: "Customer cus-console" }).waitFor();
    const checkInRow = page.getByRole("row", { name: /^big-ticket\.check-in/ });
    const localDue = DateTime.fromMillis(now.plus({ months: 3 }).toMillis(), {
      zone: "Europe/London",
    }).toFormat("yyyy-MM-dd HH:mm");
    await expect(checkInRow.textContent()).resolves.toContain(localDue);
    await expect(checkInRow.textContent()).resolves.toContain("scheduled");
    // With the customer's offset after it (a due time with milliseconds once showed ".250+0").
    const offset = now.plus({ months: 3 }).setZone("Europe/London").toFormat("ZZ");
    await expect(checkInRow.textContent()).resolves.toContain(`${localDue} ${offset}`);
    await expect(page.textContent("main")).resolves.toContain(
      "Details stored: all (a follow-up is pending).",
    );
    // A step whose job waits past its due time says until when, on the customer's clock, and why.
    const waitsUntil = now.plus({ months: 3, hours: 10 });
    await p.store.notePostponed(
      "evt-console",
      "big-ticket.check-in",
      waitsUntil.toMillis(),
      "send-window",
    );
    await page.reload();
    await expect(checkInRow.textContent()).resolves.toContain(
      `postponed to ${waitsUntil.setZone("Europe/London").toFormat("yyyy-MM-dd HH:mm")} ${waitsUntil.setZone("Europe/London").toFormat("ZZ")}: outside its send window`,
    );
    await expect(checkInRow.textContent()).resolves.toContain(localDue);
    await expectAccessible(page, "customer");
    // The message as the customer gets it, rendered with today's templates.
    await checkInRow.getByRole("link", { name: "Preview" }).click();
    await page
      .getByRole("heading", { name: "Message of evt-console/big-ticket.check-in" })
      .waitFor();
    await expect(page.textContent("main")).resolves.toContain("Carla");
    await expectAccessible(page, "preview");
    await page.goBack();

    // Cancel the check-in, with a confirmation; the CLI sees it cancelled too.
    await checkInRow.getByRole("link", { name: "Cancel…" }).click();
    await page.getByLabel(/Reason/).fill("customer asked by phone");
    await expectAccessible(page, "confirm");
    await page.getByRole("button", { name: "Cancel this follow-up" }).click();
    await expect(page.getByRole("status").textContent()).resolves.toContain(
      "Cancelled evt-console/big-ticket.check-in",
    );
    // Shown once, and never taken from the address: a link cannot put words in the console.
    await page.reload();
    await expect(page.getByRole("status").count()).resolves.toBe(0);
    await page.goto(`${page.url().split("?")[0]}?notice=Erased.%20Call%20us%20on%20555-0100`);
    await expect(page.textContent("main")).resolves.toContain("cus-console");
    await expect(page.getByRole("status").count()).resolves.toBe(0);
    await expect(
      page.getByRole("row", { name: /^big-ticket\.check-in/ }).textContent(),
    ).resolves.toContain("cancelled by dana: customer asked by phone");
    Object.assign(process.env, p.commandEnv);
    const io = captureIo();
    await runCustomer("cus-console", { config: p.configDir, json: true }, io);
    const timeline = JSON.parse(io.output()) as CustomerTimeline;
    expect(
      timeline.purchases[0]?.steps.find((s) => s.stepId === "big-ticket.check-in"),
    ).toMatchObject({ state: "cancelled", reason: { code: "operator" } });

    // Retry the failed thank-you: it arrives at the SMTP server this time.
    await page.getByRole("link", { name: "Failed" }).click();
    await expect(page.textContent("main")).resolves.toContain("evt-console/big-ticket.thank-you");
    await expectAccessible(page, "failed");
    await page.getByRole("button", { name: "Retry evt-console/big-ticket.thank-you" }).click();
    await expect(page.getByRole("status").textContent()).resolves.toContain(
      "Re-queued 1 follow-up",
    );
    const [arrived] = await p.sink.waitForMessages(1);
    expect(arrived?.envelope.rcptTo).toEqual(["console.customer@example.com"]);

    // An action without its CSRF token is refused, and changes nothing.
    const forged = await page.request.post(`${base}/console/steps/resend`, {
      form: { ref: "evt-console/big-ticket.thank-you", back: "/console/search" },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    // A request without a session is refused too.
    const outsider = await fetch(`${base}/console/failed/retry`, { method: "POST" });
    expect(outsider.status).toBe(401);

    // The other pages render and pass axe.
    await page.getByRole("link", { name: "Plan preview" }).click();
    await page
      .getByLabel(/A purchase.completed event/)
      .fill(JSON.stringify(purchaseInput({ id: "evt-preview", occurredAt: iso(now) })));
    await page.getByRole("button", { name: "Show the plan" }).click();
    await expect(page.textContent("main")).resolves.toContain("thank-you.thank-you");
    await expectAccessible(page, "plan");
    await page.getByRole("link", { name: "Report" }).click();
    await page.getByRole("heading", { name: "Owner report" }).waitFor();
    await expectAccessible(page, "report");
    // The console's report is addressed to no one in particular: no "Hello console,".
    const report = await page.request.get(`${base}/console/report/view`);
    await expect(report.text()).resolves.toContain("Hello, here is what your follow-ups did.");
    await page.getByRole("link", { name: "Audit trail" }).click();
    await expect(page.textContent("main")).resolves.toContain("sign-in");
    await expectAccessible(page, "audit");
    const queues = await page.request.get(`${base}/console/queues`);
    expect(queues.status()).toBe(200);

    // An unhappy reply is marked resolved from the timeline, with a note.
    const scope = shardScope(p.prefix, await p.shardOf("evt-console"), p.shards);
    await new StepReplies(p.redis, scope).add("evt-console", "big-ticket.thank-you", {
      text: "The TV arrived broken, 2/10",
      receivedAt: Date.now(),
      channel: "email",
    });
    await page.goto(`${base}/console/customers/cus-console`);
    await page.getByRole("link", { name: "Mark resolved…" }).click();
    await page.getByLabel(/What was done/).fill("replaced the TV");
    await page.getByRole("button", { name: "Mark resolved" }).click();
    // The reply's whole id, `@<shard>` and all outside shard 0 (the notice ends it with a stop).
    const id = replyId({
      eventId: "evt-console",
      stepId: "big-ticket.thank-you",
      n: 1,
      shard: scope.shard,
    });
    await expect(page.getByRole("status").textContent()).resolves.toContain(
      `Resolved reply ${id}.`,
    );
    await expect(page.textContent("main")).resolves.toContain("resolved by dana: replaced the TV");

    // Erase, confirmed: nothing personal is left anywhere in Redis.
    await page.goto(`${base}/console/customers/cus-console`);
    await page.getByRole("link", { name: "Erase this customer…" }).click();
    await page.getByRole("button", { name: "Erase everything about this customer" }).click();
    await page.getByRole("heading", { name: "Customer erased" }).waitFor();
    await expectAccessible(page, "receipt");
    await expect(
      keysHolding(p.redis, p.prefix, [
        "cus-console",
        "console.customer@example.com",
        "Carla",
        "Ortiz",
      ]),
    ).resolves.toEqual([]);
    await page.context().close();
  });

  it("opts a customer out from their timeline, with a confirmation, and shows it there", async () => {
    pipeline = await startPipeline("console-opt-out", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-console-oo",
        orderId: "ord-console-oo",
        occurredAt: iso(DateTime.utc()),
        customer: { id: "cus-console-oo", phone: "+442079460958" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventProcessed(p, "evt-console-oo");
    const page = await signedIn(p);
    await page.goto(`${base}/console/customers/cus-console-oo`);
    const optOutOf = (channel: string) =>
      page
        .getByRole("definition")
        .filter({ hasText: "consent:" })
        .nth(["email", "sms", "voice"].indexOf(channel));
    await expect(optOutOf("sms").textContent()).resolves.toContain("opt-out: none");

    await page.getByRole("link", { name: "Opt out…" }).click();
    await page.getByRole("heading", { name: "Stop messaging customer cus-console-oo?" }).waitFor();
    await expectAccessible(page, "opt-out");
    // Nothing chosen: refused in words, nothing done.
    for (const channel of ["Email", "SMS", "Calls"])
      await page.getByRole("checkbox", { name: channel }).uncheck();
    await page.getByRole("button", { name: "Opt out" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain(
      "name at least one channel",
    );
    await page.goBack();
    await page.getByRole("checkbox", { name: "SMS" }).check();
    await page.getByRole("checkbox", { name: "Calls" }).check();
    await page.getByRole("radio", { name: /Every follow-up/ }).check();
    await page.getByRole("button", { name: "Opt out" }).click();
    await expect(page.getByRole("status").textContent()).resolves.toBe(
      "Opted out of SMS, Calls (every follow-up); 1 address covered.",
    );
    // Back on the timeline, which shows the opt-outs, and the action with who did it.
    await page.getByRole("heading", { name: "Customer cus-console-oo" }).waitFor();
    await expect(optOutOf("email").textContent()).resolves.toContain("opt-out: none");
    await expect(optOutOf("sms").textContent()).resolves.toContain("opt-out: everything");
    await expect(optOutOf("voice").textContent()).resolves.toContain("opt-out: everything");
    const action = page.getByRole("row", { name: /opt-out/ });
    await expect(action.textContent()).resolves.toContain("dana");
    await expect(action.textContent()).resolves.toContain("sms, voice: everything");

    // Offers only by email, then: the timeline says so.
    await page.getByRole("link", { name: "Opt out…" }).click();
    await page.getByRole("checkbox", { name: "SMS" }).uncheck();
    await page.getByRole("checkbox", { name: "Calls" }).uncheck();
    await page.getByRole("radio", { name: /Offers only/ }).check();
    await page.getByRole("button", { name: "Opt out" }).click();
    await expect(page.getByRole("status").textContent()).resolves.toContain(
      "Opted out of Email (offers only)",
    );
    await expect(optOutOf("email").textContent()).resolves.toContain("opt-out: offers only");

    // Without its CSRF token the action is refused, and changes nothing.
    const forged = await page.request.post(`${base}/console/customers/cus-console-oo/opt-out`, {
      form: { "channel-email": "on" },
      maxRedirects: 0,
    });
    expect(forged.status()).toBe(403);
    await page.reload();
    await expect(optOutOf("email").textContent()).resolves.toContain("opt-out: offers only");
    await page.context().close();
  });

  it("keeps customers' right-to-left text and bidi controls to themselves: the text around them stays in order", async () => {
    pipeline = await startPipeline("console-bidi", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    const RLO = "\u202e";
    await p.publisher.publish(
      purchaseInput({
        id: `evt-${RLO}bidi`,
        // Hebrew alone, no control: the date after it would be drawn before it.
        orderId: "הזמנה",
        occurredAt: "2026-12-01T10:00:00Z",
        customer: { id: `cus-${RLO}bidi`, name: `${RLO}Ana Novak`, email: "bidi@example.com" },
        items: [item("televisions", "899.00", { name: `${RLO}OLED TV` })],
      }) as never,
    );
    await eventProcessed(p, eventJobId(`evt-${RLO}bidi`));
    const scope = shardScope(p.prefix, await p.shardOf(`evt-${RLO}bidi`), p.shards);
    await new StepReplies(p.redis, scope).add(`evt-${RLO}bidi`, "big-ticket.check-in", {
      text: `${RLO}The TV arrived broken, 1/10`,
      receivedAt: Date.now(),
      channel: "email",
    });
    const page = await signedIn(p);
    await page.goto(`${base}/console/customers/${encodeURIComponent(`cus-${RLO}bidi`)}`);
    await page.locator("h1").waitFor();

    const details = page
      .getByRole("row", { name: /^big-ticket\.check-in/ })
      .getByRole("cell")
      .nth(4);
    await details.evaluate((cell) => cell.setAttribute("data-test", "details"));
    // Every place at once: each names what is drawn out of its place.
    expect({
      purchase: outOfOrder(
        await drawnAt(page, "main section:nth-of-type(2) p", [
          "Order",
          "הזמנה",
          "2026-12-01T10:00:00Z",
          "899.00 GBP",
          "Details stored",
        ]),
      ),
      item: outOfOrder(
        await drawnAt(page, "ul.items li", ["1 ×", "OLED TV", "at", "899.00", "GBP"]),
      ),
      reply: outOfOrder(
        await drawnAt(page, "[data-test=details]", [
          "reply",
          "by email",
          "The TV arrived broken, 1/10",
          "unhappy",
          "Mark resolved",
        ]),
      ),
    }).toEqual({ purchase: [], item: [], reply: [] });

    // The console's own sentences around an id: a confirmation's heading, an action's notice.
    await page.getByRole("link", { name: "Cancel…" }).click();
    await page.locator("h1").waitFor();
    const heading = outOfOrder(await drawnAt(page, "h1", ["Cancel", "evt-", "check-in", "?"]));
    await page.getByRole("button", { name: "Cancel this follow-up" }).click();
    await page.getByRole("status").waitFor();
    expect({
      heading,
      notice: outOfOrder(await drawnAt(page, "[role=status]", ["Cancelled", "check-in", "."])),
    }).toEqual({ heading: [], notice: [] });
    await page.context().close();
  });

  it("isolates what the plan preview's problems quote, and the operator's name: the sentence around them stays in order", async () => {
    pipeline = await startPipeline("console-bidi-plan", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const page = await signedIn(p);
    // The name the console says it is signed in as, in a bdi of its own (names are ADMIN_TOKENS').
    await expect(page.locator("header .who bdi").allTextContents()).resolves.toEqual(["dana"]);

    const RLO = "\u202e";
    const event = (customer: Record<string, unknown>) =>
      JSON.stringify(
        purchaseInput({ id: "evt-plan-bidi", occurredAt: iso(DateTime.utc()), customer }),
      );
    const problems = async (json: string) => {
      await page.goto(`${p.worker?.httpAddress}/console/plan`);
      await page.getByLabel(/A purchase.completed event/).fill(json);
      await page.getByRole("button", { name: "Show the plan" }).click();
      const alert = page.getByRole("alert");
      await alert.evaluate((element) => element.setAttribute("data-test", "problems"));
      return alert;
    };

    // A key of the event's (right-to-left, a control in it, half a character), named by the path
    // at the start of its line: the sentence after it is drawn after it, in order.
    const key = await problems(
      event({ id: "cus-plan", email: "plan@example.com", [`${RLO}שם\ud800`]: 1 }),
    );
    await expect(key.textContent()).resolves.toContain("the key holds half a character");
    expect(
      outOfOrder(
        await drawnAt(page, "[data-test=problems]", [
          "customer.",
          "the key holds half a character",
          "which UTF-8 cannot hold",
          "leave it out",
        ]),
      ),
    ).toEqual([]);
    // A value a problem quotes, and the path, each in a bdi of its own.
    const value = await problems(
      event({ id: "cus-plan", email: "plan@example.com", phone: `${RLO}07400 900123` }),
    );
    await expect(value.locator("bdi").allTextContents()).resolves.toEqual([
      "customer.phone",
      `"${RLO}07400 900123"`,
    ]);
    await page.context().close();
  });

  it("isolates the ids its refusals quote: right-to-left ids with digits, each in a bdi of its own", async () => {
    pipeline = await startPipeline("console-bidi-refusals", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}` },
    });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    const eventId = "אירוע-12";
    await p.publisher.publish(
      purchaseInput({
        id: eventId,
        orderId: "طلب-77",
        occurredAt: iso(DateTime.utc()),
        customer: { id: "לקוח-7", email: "bidi.refusals@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventProcessed(p, eventJobId(eventId));
    const page = await signedIn(p);
    /** The refusal the page shows, and what each of its bdi elements holds. */
    const refusal = async () => ({
      text: await page.getByRole("alert").textContent(),
      isolated: await page.getByRole("alert").locator("bdi").allTextContents(),
    });

    // Not known: a customer, an order, a step to preview, a reply to resolve.
    const nobody = await page.goto(`${base}/console/customers/${encodeURIComponent("לקוח-404")}`);
    expect(nobody?.status()).toBe(404);
    await expect(refusal()).resolves.toEqual({
      text: 'no customer "לקוח-404" is known',
      isolated: ['"לקוח-404"'],
    });
    await page.goto(`${base}/console/orders/${encodeURIComponent("طلب-404")}`);
    await expect(refusal()).resolves.toEqual({
      text: 'no order "طلب-404" is known',
      isolated: ['"طلب-404"'],
    });
    await page.goto(
      `${base}/console/preview?ref=${encodeURIComponent("حدث-9/thank-you.thank-you")}`,
    );
    await expect(refusal()).resolves.toEqual({
      text: "no follow-up حدث-9/thank-you.thank-you is known",
      isolated: ["حدث-9/thank-you.thank-you"],
    });
    await page.goto(
      `${base}/console/confirm?action=resolve&reply=${encodeURIComponent("אירוע-12/big-ticket.check-in/3")}&back=/console/search`,
    );
    await page.getByRole("button", { name: "Mark resolved" }).click();
    await expect(refusal()).resolves.toEqual({
      text: "no reply אירוע-12/big-ticket.check-in/3 is known",
      isolated: ["אירוע-12/big-ticket.check-in/3"],
    });

    // Nothing to do: a step still scheduled is not resent.
    await page.goto(`${base}/console/customers/${encodeURIComponent("לקוח-7")}`);
    const checkIn = page.getByRole("row", { name: /^big-ticket\.check-in/ });
    await checkIn.getByRole("link", { name: "Preview" }).waitFor();
    const ref = `${eventId}/big-ticket.check-in`;
    await page.goto(
      `${base}/console/confirm?action=resend&ref=${encodeURIComponent(ref)}&back=/console/search`,
    );
    await page.getByRole("button", { name: "Send it again" }).click();
    await expect(refusal()).resolves.toEqual({
      text: `${ref} is scheduled: only a sent or failed follow-up can be resent`,
      isolated: [ref],
    });
    // Drawn as written: the id where the sentence has it, the words after it after it.
    await page.getByRole("alert").evaluate((alert) => alert.setAttribute("data-test", "refusal"));
    expect(
      outOfOrder(await drawnAt(page, "[data-test=refusal]", [ref, "is scheduled", "resent"])),
    ).toEqual([]);
    await expectAccessible(page, "refusal");
    await page.context().close();
  });

  it("opens the pages of customers and orders whose ids a browser would take apart (., .., /, ?, #, %2F, spaces), following its own links", async () => {
    pipeline = await startPipeline("console-odd-ids", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const now = iso(DateTime.utc());
    // Two customers with one address: the search lists both, by links.
    const odd = [
      { event: "evt-dots", customer: "..", order: "." },
      { event: "evt-slashes", customer: "a/b?c#d %2F e", order: "web/1042?x#y%2F" },
    ];
    for (const o of odd) {
      await p.publisher.publish(
        purchaseInput({
          id: o.event,
          orderId: o.order,
          occurredAt: now,
          customer: { id: o.customer, email: "odd.ids@example.com" },
          items: [item("televisions", "899.00")],
        }) as never,
      );
      await eventProcessed(p, eventJobId(o.event));
    }
    const page = await signedIn(p);
    const search = async (q: string) => {
      await page.getByRole("navigation").getByRole("link", { name: "Search", exact: true }).click();
      await page.getByLabel(/Customer id, email address/).fill(q);
      await page.getByRole("button", { name: "Search" }).click();
    };
    const heading = () => page.locator("h1").textContent();

    await search("odd.ids@example.com");
    for (const o of odd) {
      await page.getByRole("link", { name: o.customer, exact: true }).click();
      await expect(heading()).resolves.toBe(`Customer ${o.customer}`);
      await page.goBack();
    }
    for (const o of odd) {
      // An order's page, and from it its customer's.
      await search(o.order);
      await expect(heading()).resolves.toBe(`Order ${o.order}`);
      await page.getByRole("link", { name: o.customer, exact: true }).click();
      await expect(heading()).resolves.toBe(`Customer ${o.customer}`);
      // A preview's Back leads to the customer's page again.
      await page
        .getByRole("row", { name: /^big-ticket\.check-in/ })
        .getByRole("link", { name: "Preview" })
        .click();
      await page.getByRole("link", { name: "Back" }).click();
      await expect(heading()).resolves.toBe(`Customer ${o.customer}`);
      // Opting out from it comes back to it, the opt-out shown.
      await page.getByRole("link", { name: "Opt out…" }).click();
      await page.getByRole("button", { name: "Opt out" }).click();
      await expect(page.getByRole("status").textContent()).resolves.toContain("Opted out of");
      await expect(heading()).resolves.toBe(`Customer ${o.customer}`);
    }
    // Erasing ".." erases that customer, not another page's.
    await search("..");
    await page.getByRole("link", { name: "Erase this customer…" }).click();
    await page.getByRole("button", { name: "Erase everything about this customer" }).click();
    await page.getByRole("heading", { name: "Customer erased" }).waitFor();
    await expect(page.locator("dl").textContent()).resolves.toContain("Purchases erased1");
    await search(odd[1]?.customer ?? "");
    await expect(heading()).resolves.toBe(`Customer ${odd[1]?.customer}`);
    await expect(page.textContent("main")).resolves.toContain("Purchase evt-slashes");
    await page.context().close();
  });

  it("lists the events the worker refused, with their reasons", async () => {
    pipeline = await startPipeline("console-refused", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const page = await signedIn(p);
    await page.getByRole("link", { name: "Refused" }).click();
    await page.getByRole("heading", { name: "Refused events" }).waitFor();
    await expect(page.textContent("main")).resolves.toContain("No refused events.");

    // Added to the queue by hand, as a publisher in another language might: invalid.
    await p.events.add("purchase.completed", {
      type: "purchase.completed",
      id: "evt-bad-phone",
      customer: { id: "cus-bad", phone: "07400 900123" },
    });
    // Posted over HTTP and accepted, then refused by the intake: a refund in another currency.
    const post = (event: unknown) =>
      fetch(`${p.worker?.httpAddress}/v1/events`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${p.envVars.API_TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(event),
      });
    const now = iso(DateTime.utc().startOf("second"));
    expect(
      (await post(purchaseInput({ id: "evt-paid", orderId: "ord-paid", occurredAt: now }))).status,
    ).toBe(202);
    await eventProcessed(p, "evt-paid");
    const refund = {
      type: "purchase.refunded",
      id: "ref-in-euros",
      occurredAt: now,
      orderId: "ord-paid",
      amount: { amount: "10.00", currency: "EUR" },
    };
    expect((await post(refund)).status).toBe(202);
    await eventually(
      async () => ((await p.events.getFailedCount()) === 2 ? true : undefined),
      "both events to be refused",
    );

    await page.reload();
    const invalid = page.getByRole("row", { name: /^evt-bad-phone/ });
    await expect(invalid.textContent()).resolves.toContain("purchase.completed");
    await expect(invalid.textContent()).resolves.toMatch(
      /invalid event: .*customer\.phone: expected a valid phone number/,
    );
    await expect(page.getByRole("row", { name: /^ref-in-euros/ }).textContent()).resolves.toContain(
      "refund ref-in-euros is in EUR but order ord-paid was paid in GBP",
    );
    // Latest first, as `followups refused` lists them.
    const rows = await page.getByRole("row").allTextContents();
    expect(rows.slice(1).map((row) => row.split("purchase.")[0])).toEqual([
      "ref-in-euros",
      "evt-bad-phone",
    ]);
    await expectAccessible(page, "refused");
    await page.context().close();
  });

  it("answers what cannot be done in words, refuses a year-long report, and refuses a revoked token's sessions", async () => {
    pipeline = await startPipeline("console-refusals", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const page = await signedIn(p);
    const base = () => p.worker?.httpAddress ?? "";

    // An unknown customer or order is a 404 that says so, not "something went wrong".
    const nobody = await page.request.get(`${base()}/console/customers/cus-nobody`);
    expect(nobody.status()).toBe(404);
    expect(await nobody.text()).toMatch(
      /no customer <bdi>(&quot;|&#34;)cus-nobody(&quot;|&#34;)<\/bdi> is known/,
    );
    expect((await page.request.get(`${base()}/console/orders/ord-nothing`)).status()).toBe(404);
    // An order known by its refund alone (it arrived before the purchase) says what will happen.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-early",
      occurredAt: iso(DateTime.utc().startOf("second")),
      orderId: "ord-later",
    } as never);
    await eventProcessed(p, "ref-early");
    await page.goto(`${base()}/console/orders/ord-later`);
    await page.getByRole("heading", { name: "Order ord-later" }).waitFor();
    await expect(page.textContent("main")).resolves.toContain(
      "Its purchase has not arrived yet (refunds can arrive before it).",
    );
    await expect(page.locator("main").getByRole("listitem").allTextContents()).resolves.toEqual([
      "ref-early: the whole order",
    ]);
    await expectAccessible(page, "order without purchase");
    // Cancelling a step nobody knows, through the confirmation form.
    await page.goto(
      `${base()}/console/confirm?action=cancel&ref=evt-none/thank-you.thank-you&back=/console/search`,
    );
    const cancelled = page.waitForResponse((r) => r.url().endsWith("/console/steps/cancel"));
    await page.getByRole("button", { name: "Cancel this follow-up" }).click();
    expect((await cancelled).status()).toBe(404);
    await expect(page.textContent("main")).resolves.toContain(
      "no follow-up evt-none/thank-you.thank-you is known",
    );
    expect(p.logs.filter((line) => line.msg === "console request failed")).toEqual([]);

    // A report reads every hour of its period: more than 400 days is refused, not attempted.
    const long = await page.request.get(
      `${base()}/console/report/view?since=1726-12-01&until=2026-12-01`,
    );
    expect(long.status()).toBe(400);
    expect(await long.text()).toBe("A report covers at most 400 days (the ledger keeps 401).");
    const year = await page.request.get(
      `${base()}/console/report/view?since=2025-12-01&until=2026-12-01`,
    );
    expect(year.status()).toBe(200);

    // Bull Board's actions come from the console's pages (Origin), and are audited.
    const pause = `${base()}/console/queues/api/queues/purchase-events/pause`;
    expect((await page.request.put(pause)).status()).toBe(403);
    // However the path is spelt: the router decodes it, the check goes by the route.
    const encoded = `${base()}/console/%71ueues/%61pi/queues/purchase-events/pause`;
    expect((await page.request.put(encoded)).status()).toBe(403);
    expect(await p.events.isPaused()).toBe(false);
    expect((await page.request.put(pause, { headers: { origin: base() } })).status()).toBe(200);
    expect(await p.events.isPaused()).toBe(true);
    await page.goto(`${base()}/console/audit`);
    await expect(page.textContent("main")).resolves.toContain("PUT queues/purchase-events/pause");
    await p.events.resume();

    // dana's token is taken out of ADMIN_TOKENS (another operator's remains): her session ends.
    await p.worker?.close();
    await p.startWorker({ ADMIN_TOKENS: [{ name: "erin", token: "erin-token-0123456789" }] });
    await page.goto(`${base()}/console/audit`);
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
    // Refused, not ended: a worker of a rolling deploy still on older tokens must not sign out
    // an operator whom the newer ones accept. Her token back, her session serves again.
    await p.worker?.close();
    await p.startWorker();
    await page.goto(`${base()}/console/audit`);
    expect(new URL(page.url()).pathname).toBe("/console/audit");

    // Signing out (its form's token is bound to the session) ends the session for good.
    const [session] = (await page.context().cookies()).filter((c) => c.name === "fu_console");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to the followups console" }).waitFor();
    const replayed = await fetch(`${base()}/console/audit`, {
      headers: { cookie: `fu_console=${session?.value}` },
      redirect: "manual",
    });
    expect(replayed.headers.get("location")).toBe("/console/sign-in");
    await page.context().close();
  });
});
