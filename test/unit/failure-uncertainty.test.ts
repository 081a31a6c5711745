import { describe, expect, it } from "vitest";
import { classifySmtpFailure } from "../../src/channels/smtp-failure.js";
import { classifyTwilioFailure } from "../../src/channels/twilio-failure.js";

describe("a broken connection: was the message handed over?", () => {
  it.each([
    [{ code: "ECONNECTION", command: "DATA" }, true],
    [{ code: "ESOCKET" }, true],
    [{ code: "ETIMEDOUT", command: "." }, true],
    [{ code: "ECONNREFUSED", command: "CONN" }, undefined],
    // nodemailer names every socket error, close or timeout of an open session CONN.
    [{ code: "ECONNECTION", command: "CONN" }, true],
    [{ code: "ETIMEDOUT", command: "CONN", timeoutType: "SOCKET_TIMEOUT" }, true],
    [{ code: "ESOCKET", command: "CONN", originalCode: "ECONNREFUSED" }, undefined],
    [{ code: "ETIMEDOUT", command: "CONN", timeoutType: "GREETING_TIMEOUT" }, undefined],
    [{ code: "EDNS", command: "CONN" }, undefined],
    [{ code: "ESOCKET", command: "RCPT TO" }, undefined],
    [{ code: "ECONNECTION", command: "MAIL FROM" }, undefined],
  ])("SMTP %j → uncertain %s", (error, uncertain) => {
    const failure = classifySmtpFailure(error);
    expect(failure.kind).toBe("transient");
    expect(failure.uncertain).toBe(uncertain);
  });

  it("an SMTP reply is never uncertain: the server said what it did", () => {
    expect(classifySmtpFailure({ responseCode: 451, command: "DATA" }).uncertain).toBeUndefined();
  });

  it("a Twilio request that got no answer, or a 5xx, may have been carried out; a 4xx is certain", () => {
    expect(classifyTwilioFailure({ code: "ECONNRESET" }).uncertain).toBe(true);
    expect(classifyTwilioFailure({ code: "ECONNREFUSED" }).uncertain).toBeUndefined();
    // Twilio's error 20500: a retry may deliver the message or place the call twice.
    expect(classifyTwilioFailure({ status: 500, code: 20500 })).toMatchObject({
      kind: "transient",
      uncertain: true,
    });
    expect(classifyTwilioFailure({ status: 502 }).uncertain).toBe(true);
    expect(classifyTwilioFailure({ status: 429, code: 20429 })).toMatchObject({
      kind: "transient",
    });
    expect(classifyTwilioFailure({ status: 429, code: 20429 }).uncertain).toBeUndefined();
    expect(classifyTwilioFailure({ status: 400, code: 21211 }).uncertain).toBeUndefined();
  });
});
