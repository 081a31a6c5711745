import { describe, expect, it } from "vitest";
import { planFollowUps } from "../../src/domain/planner.js";
import { replanStep } from "../../src/domain/replan.js";
import {
  answerCall,
  answerOptedOut,
  type CallScript,
  callOutcome,
  callVoiceFor,
  decideFallback,
  hearAnswer,
  SPOOL_SETTLE_MS,
  sayLanguageOf,
  stepCallOutcome,
} from "../../src/domain/voice-call.js";
import { callTwiml } from "../../src/http/twilio-routes.js";
import { renderPlanTable } from "../../src/reports/plan-table.js";
import { judgeReply } from "../../src/reports/unhappy-replies.js";
import { instant, item, purchase, rulesFrom, rulesProblems, yaml } from "../support/fixtures.js";

const SCRIPT: CallScript = {
  eventId: "evt-1",
  stepId: "big-ticket.check-in",
  shard: 0,
  recipient: "h:abc",
  language: "en",
  sayLanguage: "en-GB",
  voice: "Polly.Amy",
  text: "Hello Nina, this is Corner Shop.",
  answeringMachine: "voicemail",
  speech: false,
};
const GERMAN: CallScript = { ...SCRIPT, language: "de", sayLanguage: "de-DE", voice: undefined };
const SHOP = "Corner Shop";

describe("a call's turns", () => {
  it("tells a number that opted out after the call was placed only that no more will come", () => {
    expect(answerOptedOut(GERMAN, "human")).toEqual({
      type: "say-and-hang-up",
      say: ["Sie erhalten von uns keine Anrufe mehr. Auf Wiederhören."],
      speaking: { language: "de-DE" },
    });
    // A machine gets no voicemail.
    expect(answerOptedOut(SCRIPT, "machine_end_beep")).toEqual({ type: "hang-up" });
  });

  it("tells one who opted out of voice offers only, answering an offer's call, that no more offers will come", () => {
    expect(answerOptedOut(SCRIPT, "human", "offers")).toMatchObject({
      type: "say-and-hang-up",
      say: ["You will get no more offers from us by phone. Goodbye."],
    });
    expect(answerOptedOut(GERMAN, "human", "offers")).toMatchObject({
      say: ["Sie erhalten von uns keine Angebote mehr per Telefon. Auf Wiederhören."],
    });
    expect(answerOptedOut(SCRIPT, "machine_end_beep", "offers")).toEqual({ type: "hang-up" });
  });

  it("asks a person for a keypad answer after the message, in their language", () => {
    expect(answerCall(SCRIPT, "human", SHOP)).toEqual({
      type: "ask",
      say: [
        "Hello Nina, this is Corner Shop.",
        "Please press a key from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.",
      ],
      speaking: { language: "en-GB", voice: "Polly.Amy" },
      speech: false,
    });
    const german = answerCall({ ...GERMAN, text: "Guten Tag" }, undefined, SHOP);
    expect(german.type === "ask" && german.say[1]).toMatch(/^Bitte drücken Sie eine Taste/);
    expect(german.type === "ask" && german.speaking).toEqual({ language: "de-DE" });
  });

  it("opens an offer's call with who calls and how to stop the calls, before the message (TCPA)", () => {
    const offer = answerCall({ ...SCRIPT, purpose: "marketing" }, "human", SHOP);
    expect(offer.type === "ask" && offer.say).toEqual([
      "This is a call from Corner Shop. To stop calls from us, press 9 at any time.",
      "Hello Nina, this is Corner Shop.",
      "Please press a key from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.",
    ]);
    const german = answerCall({ ...GERMAN, purpose: "marketing" }, "human", "Eckladen");
    expect(german.type === "ask" && german.say[0]).toBe(
      "Hier spricht Eckladen. Wenn Sie keine Anrufe von uns mehr wünschen, drücken Sie jederzeit die 9.",
    );
    // A 9 pressed while it is said counts: every sentence is inside the Gather.
    expect(callTwiml(offer, "https://f.test/gather?call=f1")).toMatch(
      /^<\?xml[^>]*><Response><Gather [^>]*><Say [^>]*>This is a call from Corner Shop\./,
    );
    // A check-in (transactional) call, and one of a version that kept no purpose, start with the message.
    for (const script of [{ ...SCRIPT, purpose: "transactional" as const }, SCRIPT]) {
      const turn = answerCall(script, "human", SHOP);
      expect(turn.type === "ask" && turn.say[0]).toBe("Hello Nina, this is Corner Shop.");
    }
  });

  it("never leaves an offer's call on a machine: its voice settings hang up whatever the rules say", () => {
    const settings = { voices: {}, answeringMachine: "voicemail", speech: false } as const;
    expect(callVoiceFor("en-GB", settings, "marketing")?.answeringMachine).toBe("hangup");
    expect(callVoiceFor("en-GB", settings, "transactional")?.answeringMachine).toBe("voicemail");
    expect(callVoiceFor("en-GB", settings)?.answeringMachine).toBe("voicemail");
    const offer = { ...SCRIPT, purpose: "marketing" as const, answeringMachine: "hangup" as const };
    expect(answerCall(offer, "machine_end_beep", SHOP)).toEqual({ type: "hang-up" });
  });

  it("leaves a voicemail at a machine, or hangs up, as configured; never talks to a fax", () => {
    expect(answerCall(SCRIPT, "machine_end_beep", SHOP)).toMatchObject({
      type: "say-and-hang-up",
      say: ["Hello Nina, this is Corner Shop.", "There is no need to call back. Goodbye."],
    });
    expect(answerCall({ ...SCRIPT, answeringMachine: "hangup" }, "machine_start", SHOP)).toEqual({
      type: "hang-up",
    });
    expect(answerCall(SCRIPT, "fax", SHOP)).toEqual({ type: "hang-up" });
  });

  it.each([
    ["2", undefined, { kind: "score", score: 2, reply: "Keypad: 2/5" }],
    ["5", undefined, { kind: "score", score: 5, reply: "Keypad: 5/5" }],
    ["9", undefined, { kind: "stop" }],
    [undefined, undefined, { kind: "none" }],
    ["7", undefined, { kind: "invalid" }],
    ["#", undefined, { kind: "invalid" }],
    [undefined, "two", { kind: "score", score: 2, reply: "Said: 2/5" }],
    [undefined, "Zwei.", { kind: "score", score: 2, reply: "Said: 2/5" }],
    [undefined, "stop calling me", { kind: "stop" }],
    [undefined, "Please don't call me again", { kind: "stop" }],
    [undefined, "Unsubscribe me", { kind: "stop" }],
    [undefined, "Take me off your list", { kind: "stop" }],
    [undefined, "Nicht mehr anrufen bitte", { kind: "stop" }],
    // How German speakers say "stop calling me", also after a score.
    [undefined, "Hören Sie auf, mich anzurufen.", { kind: "stop" }],
    [undefined, "Zwei. Hören Sie auf, mich anzurufen.", { kind: "stop" }],
    [undefined, "Lassen Sie mich in Ruhe", { kind: "stop" }],
    [undefined, "Basta.", { kind: "stop" }],
    [undefined, "Darme de baja", { kind: "stop" }],
    [undefined, "please call me back", { kind: "invalid" }],
    [undefined, "two or three", { kind: "invalid" }],
    // "Stop" on its own, or after the score, is a 9; "stop" in another sense beside a score is not.
    [undefined, "Stop.", { kind: "stop" }],
    [undefined, "uh, stop", { kind: "stop" }],
    [undefined, "It's a five. Stop.", { kind: "stop" }],
    [undefined, "Five, I can't stop watching it", { kind: "score", score: 5 }],
    [undefined, "Don't stop, it's a four", { kind: "score", score: 4 }],
    [undefined, "non-stop fun, five", { kind: "score", score: 5 }],
  ] as const)("hears digits %j / speech %j as %j", (digits, speech, expected) => {
    expect(hearAnswer({ ...SCRIPT, speech: true }, digits, speech)).toMatchObject(expected);
  });

  it("asks again after a wrong key twice at most, then ends the call", () => {
    expect(hearAnswer(SCRIPT, "7", undefined, 0)).toMatchObject({ kind: "invalid" });
    expect(hearAnswer(SCRIPT, "7", undefined, 1)).toMatchObject({ kind: "invalid" });
    const third = hearAnswer(SCRIPT, "7", undefined, 2);
    expect(third).toMatchObject({ kind: "none", turn: { type: "say-and-hang-up" } });
  });

  it("records scores the reply judgement reads: 1 and 2 unhappy, 3 to 5 not", () => {
    const judged = [1, 2, 3, 4, 5].map((digit) => {
      const heard = hearAnswer(SCRIPT, String(digit), undefined);
      return heard.kind === "score" && judgeReply(heard.reply).unhappy;
    });
    expect(judged).toEqual([true, true, false, false, false]);
  });

  it("says sorry to a low score and thanks to a good one, then hangs up", () => {
    const low = hearAnswer(GERMAN, "1", undefined);
    expect(low.turn).toMatchObject({ type: "say-and-hang-up" });
    expect(low.turn.type !== "hang-up" && low.turn.say[0]).toMatch(
      /^Vielen Dank\. Das tut uns leid/,
    );
    const good = hearAnswer(SCRIPT, "4", undefined);
    expect(good.turn.type !== "hang-up" && good.turn.say).toEqual([
      "Thank you for your answer. Goodbye.",
    ]);
  });

  it("builds TwiML with the SDK: a Gather posting back, Say in the language, Hangup", () => {
    const ask = callTwiml(answerCall(SCRIPT, "human", SHOP), "https://f.test/gather?call=f1");
    expect(ask).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="dtmf" numDigits="1" timeout="8" action="https://f.test/gather?call=f1" method="POST" actionOnEmptyResult="true"><Say language="en-GB" voice="Polly.Amy">Hello Nina, this is Corner Shop.</Say><Say language="en-GB" voice="Polly.Amy">Please press a key from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.</Say></Gather></Response>',
    );
    // Text from a purchase is escaped, never spliced into the XML.
    const spliced = callTwiml(
      answerCall({ ...SCRIPT, text: 'Hi <Dial>+1</Dial> & "co"' }, "machine_end_beep", SHOP),
      "",
    );
    expect(spliced).toContain('Hi &lt;Dial&gt;+1&lt;/Dial&gt; &amp; "co"');
    expect(spliced).not.toContain("<Dial>");
    expect(callTwiml({ type: "hang-up" }, "")).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>',
    );
  });
});

describe("settings of a call", () => {
  it("speaks the customer's region where Twilio has it, else the language's first", () => {
    expect(sayLanguageOf("en-GB", "en")).toBe("en-GB");
    expect(sayLanguageOf("en-us", "en")).toBe("en-US");
    expect(sayLanguageOf("en-NZ", "en")).toBe("en-GB");
    expect(sayLanguageOf("de-AT", "de")).toBe("de-DE");
    expect(
      callVoiceFor("de", {
        voices: { de: "Polly.Vicki" },
        answeringMachine: "hangup",
        speech: true,
      }),
    ).toEqual({
      language: "de",
      sayLanguage: "de-DE",
      voice: "Polly.Vicki",
      answeringMachine: "hangup",
      speech: true,
    });
    expect(callVoiceFor("fr-FR", { voices: {}, answeringMachine: "hangup", speech: false })).toBe(
      undefined,
    );
  });
});

describe("how a call ended", () => {
  it.each([
    ["busy", undefined, undefined, "busy"],
    ["no-answer", undefined, undefined, "no-answer"],
    ["failed", undefined, undefined, "failed"],
    ["canceled", undefined, undefined, "failed"],
    ["completed", "human", "answered", "answered"],
    ["completed", "human", undefined, "answered-no-score"],
    ["completed", "unknown", undefined, "answered-no-score"],
    ["completed", "machine_end_beep", undefined, "voicemail"],
    ["completed", "machine_end_beep", "voicemail", "voicemail"],
    ["in-progress", "human", undefined, undefined],
    ["ringing", undefined, undefined, undefined],
    // The step's other call (placed twice) was answered: a person was reached.
    ["no-answer", undefined, "answered", "answered"],
    ["busy", undefined, "answered-no-score", "answered-no-score"],
    ["no-answer", undefined, "machine", "no-answer"],
    ["ringing", undefined, "answered", undefined],
  ] as const)("%s (%s, recorded %s) → %s", (status, answeredBy, recorded, expected) => {
    expect(callOutcome(status, answeredBy, recorded, "voicemail")).toBe(expected);
  });

  it("with hangup configured, a machine is a machine, not a voicemail", () => {
    expect(callOutcome("completed", "machine_start", undefined, "hangup")).toBe("machine");
  });
});

describe("a fallback after a call", () => {
  const NOW = 1_800_000_000_000;
  it.each([
    [{ state: "sent", changedAt: NOW - 60_000, delivery: { status: "no-answer" } }, "send"],
    [{ state: "sent", changedAt: NOW - 60_000, delivery: { status: "busy" } }, "send"],
    [{ state: "sent", changedAt: NOW - 60_000, delivery: { status: "voicemail" } }, "send"],
    [{ state: "failed" }, "send"],
    [{ state: "skipped" }, "send"],
    [{ state: "sent", delivery: { status: "answered" } }, "skip call-answered"],
    [{ state: "sent", delivery: { status: "answered-no-score" } }, "skip call-answered"],
    [{ state: "cancelled" }, "skip call-cancelled"],
    [{ state: "skipped", reason: { code: "capped" } }, "send"],
    [{ state: "skipped", reason: { code: "coalesced" } }, "skip call-coalesced"],
    // Skipped by a re-plan as another step of its purchase has its kind (a fallback that was a
    // job already stayed): the fallback would be a second step of that kind.
    [{ state: "skipped", reason: { code: "superseded" } }, "skip call-superseded"],
    [{ state: "scheduled" }, "wait"],
    [{ state: "sending" }, "wait"],
    [{ state: "sent", changedAt: NOW - 60_000 }, "wait"],
    [{ state: "sent", changedAt: NOW - 3 * 3600_000 }, "skip call-outcome-unknown"],
    [undefined, "skip no-call"],
  ] as const)("call %j → %s", (primary, expected) => {
    const decision = decideFallback(primary, NOW, 0);
    expect(decision.action === "skip" ? `skip ${decision.code}` : decision.action).toBe(expected);
    if (decision.action === "wait") expect(decision.until).toBeGreaterThan(NOW);
  });

  it("goes no sooner than `after` past the call's end, however late the call was", () => {
    const DAY = 86_400_000;
    const lateCall = {
      state: "sent",
      changedAt: NOW - 3_600_000,
      delivery: { status: "busy" },
    } as const;
    expect(decideFallback(lateCall, NOW, DAY)).toEqual({
      action: "wait",
      until: NOW - 3_600_000 + DAY,
    });
    expect(decideFallback(lateCall, NOW + DAY, DAY)).toEqual({ action: "send" });
    expect(decideFallback({ state: "failed", changedAt: NOW }, NOW, DAY)).toEqual({
      action: "wait",
      until: NOW + DAY,
    });
  });

  it("takes an unknown outcome as never coming only a minute after Redis is back from an outage after the call (or the worker started): it may wait in the webhook spool", () => {
    const HOUR = 3_600_000;
    const outcomeLost = { state: "sent", changedAt: NOW - 3 * HOUR } as const;
    // Redis came back (or the worker started) 10 s ago, after the call: a minute from then.
    expect(decideFallback(outcomeLost, NOW, 0, NOW - 10_000)).toEqual({
      action: "wait",
      until: NOW - 10_000 + SPOOL_SETTLE_MS,
    });
    // A minute on, nothing came: skipped, as before.
    expect(decideFallback(outcomeLost, NOW + SPOOL_SETTLE_MS, 0, NOW - 10_000)).toMatchObject({
      action: "skip",
      code: "call-outcome-unknown",
    });
    // Ready since before the call: no outage since it, nothing can be spooled.
    expect(decideFallback(outcomeLost, NOW, 0, NOW - 4 * HOUR)).toMatchObject({
      action: "skip",
      code: "call-outcome-unknown",
    });
    // An outcome on file is decided on at once.
    expect(
      decideFallback({ ...outcomeLost, delivery: { status: "no-answer" } }, NOW, 0, NOW - 10_000),
    ).toEqual({ action: "send" });
  });
});

const VOICE_RULES = yaml`
  version: 1
  defaults: { timezone: Europe/London, currency: GBP, locale: en-GB }
  sendWindows:
    voice: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat] }
    sms: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat] }
  channels:
    voice: { ratePerSecond: 1, voices: { en: Polly.Amy }, answeringMachine: hangup }
  rules:
    - id: big-ticket
      when: { total: { min: 500 } }
      steps:
        - kind: check-in
          channel: voice
          template: check-in-call
          delay: P3M
          fallback: { channel: sms, template: check-in, after: P1D }
    - id: everyone
      steps:
        - kind: check-in
          channel: sms
          template: check-in
          delay: P1M
`;

describe("a voice step's fallback in the plan", () => {
  it("is planned with its call, a day later, and shown as conditional", () => {
    const rules = rulesFrom(VOICE_RULES);
    expect(rules.voiceCalls).toEqual({
      voices: { en: "Polly.Amy" },
      answeringMachine: "hangup",
      speech: false,
    });
    const event = purchase({
      occurredAt: "2027-01-29T10:00:00Z",
      customer: { phone: "+447400123456" },
      items: [item("televisions", "900.00")],
    });
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, instant(event.occurredAt));
    expect(plan.steps.map((s) => [s.stepId, s.channel, s.dueAt, s.fallbackOf])).toEqual([
      ["big-ticket.check-in", "voice", "2027-04-29T09:00:00Z", undefined],
      ["big-ticket.check-in-fallback", "sms", "2027-04-30T09:00:00Z", "big-ticket.check-in"],
    ]);
    // The SMS check-in of the lower rule stays superseded by the call.
    expect(plan.skipped.map((s) => [s.stepId, s.code])).toEqual([
      ["everyone.check-in", "superseded"],
    ]);
    expect(renderPlanTable(plan)).toContain("sms if big-ticket.check-in is not answered");
  });

  it("is timed from its call as the worker sends it: `after` from the call, once in the table", () => {
    const rules = rulesFrom(VOICE_RULES);
    // Three months after a Saturday evening is a Sunday, when calls wait for Monday 09:00.
    const event = purchase({
      occurredAt: "2026-11-21T19:30:00Z",
      customer: { phone: "+447400123456" },
      items: [item("televisions", "900.00")],
    });
    const now = instant(event.occurredAt);
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, now);
    expect(plan.steps.map((s) => [s.stepId, s.dueAt])).toEqual([
      ["big-ticket.check-in", "2027-02-22T09:00:00Z"],
      // A day after the call, not Monday 19:30 (a day after the Sunday the call was not made).
      ["big-ticket.check-in-fallback", "2027-02-23T09:00:00Z"],
    ]);
    const table = renderPlanTable(plan);
    expect(table.match(/sms if big-ticket\.check-in is not answered/g)).toHaveLength(1);
    expect(table).toContain("Mon 22 Feb 2027 09:00 GMT");
    expect(table).toContain("Tue 23 Feb 2027 09:00 GMT");
    // A rules reload re-plans the pending fallback to the same time: it stays where it is.
    const fallback = {
      stepId: "big-ticket.check-in-fallback",
      dueAt: Date.parse("2027-02-23T09:00:00Z"),
    };
    expect(
      replanStep(fallback, event, { previousPurchases: 0 }, rules, instant("2026-12-01T09:00:00Z")),
    ).toEqual({ action: "keep" });

    // A call planned late (the event came in after its time, within the grace period) goes at
    // once, and its fallback a day after that.
    const late = planFollowUps(
      purchase({
        occurredAt: "2027-01-29T10:00:00Z",
        customer: { phone: "+447400123456" },
        items: [item("televisions", "900.00")],
      }),
      rules,
      { previousPurchases: 0 },
      instant("2027-04-29T18:30:00Z"),
    );
    expect(late.steps.map((s) => [s.stepId, s.dueAt])).toEqual([
      ["big-ticket.check-in", "2027-04-29T18:30:00Z"],
      ["big-ticket.check-in-fallback", "2027-04-30T18:30:00Z"],
    ]);
  });

  it("of a thank-you call that waits for its coalescing window, counts `after` from the call as it waits", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP, locale: en-GB }
      sendWindows:
        voice: { start: "09:00", end: "20:00" }
        sms: { start: "09:00", end: "20:00" }
      rules:
        - id: thanks
          coalesce: PT3H
          steps:
            - kind: thank-you
              channel: voice
              template: thank-you-call
              delay: PT0S
              fallback: { channel: sms, template: thank-you, after: PT1H }
    `);
    const event = purchase({
      occurredAt: "2026-11-23T10:00:00Z",
      customer: { phone: "+447400123456" },
    });
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, instant(event.occurredAt));
    // The call waits for the end of the window (13:00); its fallback an hour after that, never
    // before the call it stands in for.
    expect(plan.steps.map((s) => [s.stepId, s.dueAt])).toEqual([
      ["thanks.thank-you", "2026-11-23T13:00:00Z"],
      ["thanks.thank-you-fallback", "2026-11-23T14:00:00Z"],
    ]);
  });

  it("counts `after` as a fixed length, as the worker does from the call's end: P2D is 48 hours across a DST change", () => {
    const rules = rulesFrom(VOICE_RULES.replace("after: P1D", "after: P2D"));
    // The call on Saturday 24 October 10:00 BST; London's clocks go back that night.
    const event = purchase({
      occurredAt: "2026-07-24T09:00:00Z",
      customer: { phone: "+447400123456" },
      items: [item("televisions", "900.00")],
    });
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, instant(event.occurredAt));
    expect(plan.steps.map((s) => [s.stepId, s.localDueAt])).toEqual([
      ["big-ticket.check-in", "2026-10-24T10:00:00+01:00"],
      ["big-ticket.check-in-fallback", "2026-10-26T09:00:00+00:00"],
    ]);
  });

  it("is not planned when its call is not", () => {
    const rules = rulesFrom(VOICE_RULES);
    const event = purchase({
      occurredAt: "2027-01-29T10:00:00Z",
      customer: { phone: undefined, email: "a@b.example" },
      items: [item("televisions", "900.00")],
    });
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, instant(event.occurredAt));
    expect(plan.steps).toEqual([]);
    expect(plan.skipped.map((s) => [s.stepId, s.code])).toEqual([
      ["big-ticket.check-in", "no-contact"],
      ["big-ticket.check-in-fallback", "no-call"],
      ["everyone.check-in", "no-contact"],
    ]);
  });

  it("is refused on a step that is not a call, with a channel that cannot call back, or when its id is taken", () => {
    expect(
      rulesProblems(
        VOICE_RULES.replace("channel: voice", "channel: email").replace(
          "template: check-in-call",
          "template: thank-you",
        ),
      ),
    ).toEqual([
      expect.stringContaining(
        "rules[0].steps[0].fallback: only a voice step can have a fallback (this step sends email)",
      ),
    ]);
    expect(
      rulesProblems(
        VOICE_RULES.replace("fallback: { channel: sms,", "fallback: { channel: voice,"),
      ),
    ).toEqual([expect.stringContaining("expected the fallback's channel: email or sms")]);
    expect(
      rulesProblems(
        VOICE_RULES.replace(
          "after: P1D }\n",
          "after: P1D }\n      - { id: check-in-fallback, kind: custom, channel: sms, template: check-in, delay: P4M }\n",
        ),
      ),
    ).toEqual([
      expect.stringContaining(
        'rules[0].steps[1].id: rule big-ticket already has a step with the id "check-in-fallback"',
      ),
    ]);
  });
});

describe("a step's outcome from its calls'", () => {
  it("is the one that went furthest: a person reached on one call stays reached whatever the other's end", () => {
    expect(stepCallOutcome(["answered-no-score", "unheard"])).toBe("answered-no-score");
    expect(stepCallOutcome(["unheard", "answered-no-score"])).toBe("answered-no-score");
    expect(stepCallOutcome(["answered-no-score", "answered"])).toBe("answered");
    expect(stepCallOutcome(["no-answer", "voicemail"])).toBe("voicemail");
    expect(stepCallOutcome(["busy"])).toBe("busy");
    expect(stepCallOutcome([])).toBeUndefined();
  });
});
