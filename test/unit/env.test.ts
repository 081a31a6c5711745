import MailComposer from "nodemailer/lib/mail-composer/index.js";
import { afterEach, describe, expect, it } from "vitest";
import { mailOptions } from "../../src/channels/mail-options.js";
import { commandEnv } from "../../src/cli/command-redis.js";
import { withEmbeddedRedis } from "../../src/cli/worker-command.js";
import { readEnv } from "../../src/config/env.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";

describe("REPLY_TO", () => {
  it("accepts an email address", () => {
    const result = readEnv({ REPLY_TO: "help@shop.example" });
    expect(result.ok && result.env.REPLY_TO).toBe("help@shop.example");
  });

  it.each([{}, { REPLY_TO: "" }])("is unset when absent or empty (%j)", (source) => {
    const result = readEnv(source);
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.REPLY_TO).toBeUndefined();
  });

  it.each(["help desk", "help@", '"Corner Shop" <help@shop.example>'])(
    "refuses %j, naming the variable and what is expected",
    (value) => {
      expect(readEnv({ REPLY_TO: value })).toEqual({
        ok: false,
        problems: ["REPLY_TO: expected an email address such as help@shop.example"],
      });
    },
  );
});

describe("TRUST_PROXY", () => {
  it.each([
    [{}, false],
    [{ TRUST_PROXY: "" }, false],
    [{ TRUST_PROXY: "false" }, false],
    [{ TRUST_PROXY: "true" }, true],
    [{ TRUST_PROXY: "127.0.0.1" }, ["127.0.0.1"]],
    [{ TRUST_PROXY: " 10.0.0.0/8, fd00::/8 ,192.0.2.1" }, ["10.0.0.0/8", "fd00::/8", "192.0.2.1"]],
  ])("reads %j as %j", (source, expected) => {
    const result = readEnv(source);
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.TRUST_PROXY).toEqual(expected);
  });

  it.each(["1", "yes", "10.0.0.0/33", "10.0.0.300", "proxy.internal", "10.0.0.1,,10.0.0.2"])(
    "refuses %j, naming the variable, the bad entry and what is expected",
    (value) => {
      const result = readEnv({ TRUST_PROXY: value });
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.problems).toHaveLength(1);
      expect(result.problems[0]).toMatch(
        /^TRUST_PROXY: expected true, false, or comma-separated IP addresses and CIDR ranges/,
      );
    },
  );
});

describe("what was given, quoted cut short", () => {
  // An emoji across the cut: kept out whole, never half of it (a lone surrogate, which JSON
  // writes as \ud83d and a terminal as a replacement character).
  it("cuts a value of a fixed set before an emoji at its 100th unit", () => {
    const value = `${"x".repeat(99)}\u{1F600}tail`;
    expect(readEnv({ LOG_FORMAT: value })).toEqual({
      ok: false,
      problems: [`LOG_FORMAT: expected json or pretty, got "${"x".repeat(99)}"`],
    });
  });

  it("cuts TRUST_PROXY's bad entry before an emoji at its 60th unit", () => {
    const result = readEnv({ TRUST_PROXY: `${"a".repeat(59)}\u{1F600}` });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      `TRUST_PROXY: expected true, false, or comma-separated IP addresses and CIDR ranges such as 10.0.0.0/8,127.0.0.1; "${"a".repeat(59)}" is none of these`,
    ]);
  });
});

describe("REDIS_URL in cluster mode", () => {
  it("refuses a database number, which a cluster does not have, naming it", () => {
    expect(
      readEnv({
        REDIS_CLUSTER: "true",
        REDIS_URL: "redis://127.0.0.1:7000, redis://127.0.0.1:7001/2",
      }),
    ).toEqual({
      ok: false,
      problems: [
        "REDIS_URL: a Redis Cluster has database 0 only: remove the database number (/2) from the URL",
      ],
    });
  });

  it.each([
    "redis://127.0.0.1:7000",
    "redis://127.0.0.1:7000/",
    "redis://127.0.0.1:7000/0,redis://127.0.0.1:7001",
  ])("accepts seeds without one, or with 0 (%s)", (REDIS_URL) => {
    const result = readEnv({ REDIS_CLUSTER: "true", REDIS_URL });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.REDIS_CLUSTER).toBe(true);
  });

  it("leaves a single Redis's database number alone", () => {
    const result = readEnv({ REDIS_URL: "redis://127.0.0.1:6380/3" });
    expect(result.ok && result.env.REDIS_URL).toBe("redis://127.0.0.1:6380/3");
  });
});

describe("problems across variables", () => {
  it("are listed with the invalid values in one start, not in a second round", () => {
    expect(
      readEnv({
        FOLLOW_UP_SHARDS: "many",
        FOLLOW_UP_SHARDS_SERVED: "0-x",
        SMTP_URL: "smtp://127.0.0.1:2525",
        TWILIO_ACCOUNT_SID: "not-a-sid",
        TWILIO_AUTH_TOKEN: "token-of-some-length",
      }),
    ).toEqual({
      ok: false,
      problems: [
        'FOLLOW_UP_SHARDS: expected a whole number of shards, 1 to 1024, got "many"',
        expect.stringMatching(/^TWILIO_ACCOUNT_SID: /),
        expect.stringMatching(/^FOLLOW_UP_SHARDS_SERVED: expected shard numbers/),
        "MAIL_FROM: required when SMTP_URL is set",
      ],
    });
  });
});

describe("the retry waits", () => {
  // The first retry waited DELIVERY_RETRY_MAX_MS, as every later one, whatever the base said.
  it("refuses a first wait (DELIVERY_RETRY_BASE_MS) above the longest (DELIVERY_RETRY_MAX_MS), naming both", () => {
    expect(readEnv({ DELIVERY_RETRY_BASE_MS: "600000", DELIVERY_RETRY_MAX_MS: "60000" })).toEqual({
      ok: false,
      problems: [
        "DELIVERY_RETRY_BASE_MS: 600000 is above DELIVERY_RETRY_MAX_MS (60000), the longest wait between retries: lower DELIVERY_RETRY_BASE_MS or raise DELIVERY_RETRY_MAX_MS",
      ],
    });
    // Above the longest's default too.
    expect(readEnv({ DELIVERY_RETRY_BASE_MS: "7200000" })).toEqual({
      ok: false,
      problems: [expect.stringContaining("DELIVERY_RETRY_MAX_MS (3600000)")],
    });
  });

  it("takes a first wait equal to the longest (every retry then waits about as long)", () => {
    const result = readEnv({ DELIVERY_RETRY_BASE_MS: "60000", DELIVERY_RETRY_MAX_MS: "60000" });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.DELIVERY_RETRY_BASE_MS).toBe(60_000);
  });

  it("is listed with another variable's problem in one start", () => {
    const result = readEnv({
      DELIVERY_RETRY_BASE_MS: "600000",
      DELIVERY_RETRY_MAX_MS: "60000",
      HTTP_PORT: "eighty",
    });
    expect(result.ok || result.problems).toEqual([
      'HTTP_PORT: expected a whole number from 0 to 65535, got "eighty"',
      expect.stringMatching(/^DELIVERY_RETRY_BASE_MS: 600000 is above DELIVERY_RETRY_MAX_MS/),
    ]);
  });
});

describe("numbers", () => {
  it.each([
    ["HTTP_PORT", " 8081 ", 8081],
    ["HTTP_PORT", "0", 0],
    ["FOLLOW_UP_SHARDS", "16", 16],
    ["REDIS_WAIT_REPLICAS", "1", 1],
    ["PROMOTE_HORIZON_MS", "60000", 60_000],
  ] as const)("%s=%j is %d", (name, value, expected) => {
    const result = readEnv({ [name]: value });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env[name]).toBe(expected);
  });

  // An empty HTTP_PORT was read as 0: the server listened on a random port, the health check
  // on 8080 failed, and nothing said why.
  it.each([
    ["HTTP_PORT", 8080],
    ["RECORD_RETENTION_DAYS", 90],
    ["INTAKE_CONCURRENCY", 32],
    ["REDIS_WAIT_REPLICAS", 0],
    ["PROMOTE_HORIZON_MS", 300_000],
    ["FOLLOW_UP_SHARDS", 1],
  ] as const)("%s set empty takes its default, %d", (name, expected) => {
    const result = readEnv({ [name]: "" });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env[name]).toBe(expected);
  });

  it.each([
    ["HTTP_PORT", "0x50", 'HTTP_PORT: expected a whole number from 0 to 65535, got "0x50"'],
    ["HTTP_PORT", "65536", "HTTP_PORT: expected a whole number from 0 to 65535, got 65536"],
    [
      "RECORD_RETENTION_DAYS",
      "1e3",
      'RECORD_RETENTION_DAYS: expected a whole number from 1 to 3650 (ten years), got "1e3"',
    ],
    [
      "RECORD_RETENTION_DAYS",
      "0",
      "RECORD_RETENTION_DAYS: expected a whole number from 1 to 3650 (ten years), got 0",
    ],
    [
      "INTAKE_CONCURRENCY",
      "3.0",
      'INTAKE_CONCURRENCY: expected a whole number of at least 1, got "3.0"',
    ],
    [
      "REDIS_WAIT_REPLICAS",
      "-1",
      'REDIS_WAIT_REPLICAS: expected a whole number from 0 to 10, got "-1"',
    ],
    [
      "FOLLOW_UP_SHARDS",
      "2000",
      "FOLLOW_UP_SHARDS: expected a whole number of shards, 1 to 1024, got 2000",
    ],
    [
      "PROMOTE_HORIZON_MS",
      "5000",
      "PROMOTE_HORIZON_MS: expected a whole number of at least 60000 (one minute), got 5000",
    ],
    // Node runs a longer timer at once: the shutdown deadline, the job locks' renewal and the
    // stalled-job check would fire every millisecond.
    [
      "SHUTDOWN_TIMEOUT_MS",
      "3000000000",
      "SHUTDOWN_TIMEOUT_MS: expected a whole number from 1 to 2147483647 (about 24.8 days, the longest timer), got 3000000000",
    ],
    [
      "JOB_LOCK_MS",
      "2147483648",
      "JOB_LOCK_MS: expected a whole number from 1000 to 2147483647 (a second to about 24.8 days, the longest timer), got 2147483648",
    ],
    // A lock of a millisecond has BullMQ check for stalled jobs every millisecond, and fail a
    // follow-up after ten "stalls"; a lease of one lets another worker send again at once.
    [
      "JOB_LOCK_MS",
      "1",
      "JOB_LOCK_MS: expected a whole number from 1000 to 2147483647 (a second to about 24.8 days, the longest timer), got 1",
    ],
    [
      "REDIS_COMMAND_TIMEOUT_MS",
      "50",
      "REDIS_COMMAND_TIMEOUT_MS: expected a whole number from 100 to 2147483647 (about 24.8 days, the longest timer), got 50",
    ],
    [
      "DELIVERY_LEASE_MS",
      "999",
      "DELIVERY_LEASE_MS: expected a whole number of at least 1000 (a second; a send still under way when it ends may be sent again), got 999",
    ],
    [
      "RECORD_RETENTION_DAYS",
      "100000000000",
      "RECORD_RETENTION_DAYS: expected a whole number from 1 to 3650 (ten years), got 100000000000",
    ],
  ])("%s=%j is refused with what was given", (name, value, problem) => {
    expect(readEnv({ [name]: value })).toEqual({ ok: false, problems: [problem] });
  });

  // A JavaScript number holds only whole numbers up to 2^53 - 1 exactly: 9007199254740993 was
  // read as 9007199254740992, accepted, and quoted rounded when refused.
  it.each([
    [
      "DELIVERY_RETRY_MAX_MS",
      "9007199254740992",
      "DELIVERY_RETRY_MAX_MS: expected a whole number of at least 1, got 9007199254740992: beyond 9007199254740991 (2^53 - 1), the largest whole number read exactly",
    ],
    [
      "INBOUND_EMAIL_MAX_BYTES",
      "99999999999999999999",
      "INBOUND_EMAIL_MAX_BYTES: expected a whole number of at least 1, got 99999999999999999999: beyond 9007199254740991 (2^53 - 1), the largest whole number read exactly",
    ],
    [
      "SHUTDOWN_TIMEOUT_MS",
      "9007199254740993",
      "SHUTDOWN_TIMEOUT_MS: expected a whole number from 1 to 2147483647 (about 24.8 days, the longest timer), got 9007199254740993",
    ],
  ])("%s=%s, beyond 2^53 - 1, is refused with its digits as written", (name, value, problem) => {
    expect(readEnv({ [name]: value })).toEqual({ ok: false, problems: [problem] });
  });

  it("takes 2^53 - 1 itself", () => {
    const result = readEnv({ DELIVERY_RETRY_MAX_MS: "9007199254740991" });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.DELIVERY_RETRY_MAX_MS).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe("an empty value", () => {
  it("counts as unset, but for REDIS_URL", () => {
    const names = [
      "NODE_ENV",
      "LOG_LEVEL",
      "QUEUE_PREFIX",
      "CONFIG_DIR",
      "HTTP_ENABLED",
      "HTTP_HOST",
    ];
    const result = readEnv(Object.fromEntries(names.map((name) => [name, ""])));
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(readEnv({})).toEqual(result);
    expect(readEnv({ REDIS_URL: "" }).ok).toBe(false);
  });
});

describe("a one-shot command's environment", () => {
  const before = process.env.REDIS_URL;
  afterEach(() => {
    if (before === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = before;
  });

  it("refuses REDIS_URL set empty, as the worker does, instead of picking a Redis", async () => {
    process.env.REDIS_URL = "";
    await expect(commandEnv()).rejects.toThrow(/invalid environment:\nREDIS_URL: /);
    process.env.REDIS_URL = "redis://127.0.0.1:1";
    expect((await commandEnv()).env.REDIS_URL).toBe("redis://127.0.0.1:1");
  });
});

describe("a worker on the embedded Redis", () => {
  const url = "redis://127.0.0.1:45678";

  it("listens on the loopback address unless HTTP_HOST names another, also when it is set empty", () => {
    expect(withEmbeddedRedis({}, url, "t".repeat(16)).HTTP_HOST).toBe("127.0.0.1");
    expect(withEmbeddedRedis({ HTTP_HOST: "" }, url, "t".repeat(16)).HTTP_HOST).toBe("127.0.0.1");
    expect(withEmbeddedRedis({ HTTP_HOST: "0.0.0.0" }, url, undefined).HTTP_HOST).toBe("0.0.0.0");
  });

  it("uses its Redis, and the generated console token only where ADMIN_TOKENS gives none", () => {
    const token = "t".repeat(16);
    expect(withEmbeddedRedis({ REDIS_URL: undefined }, url, token)).toMatchObject({
      REDIS_URL: url,
      ADMIN_TOKENS: `admin:${token}`,
    });
    const given = `alice:${"a".repeat(16)}`;
    expect(withEmbeddedRedis({ ADMIN_TOKENS: given }, url, undefined).ADMIN_TOKENS).toBe(given);
  });
});

describe("bearer tokens (API_TOKEN, TILL_TOKEN, INBOUND_EMAIL_TOKEN)", () => {
  const token = "tok-0123456789abcdef";

  it.each(["API_TOKEN", "TILL_TOKEN", "INBOUND_EMAIL_TOKEN"] as const)(
    "%s read from a file with its line end is the token, as ADMIN_TOKENS' are",
    (name) => {
      // A secret mounted from a file usually ends in a newline: kept, no caller could ever match it.
      const result = readEnv({ [name]: ` ${token}\n` });
      if (!result.ok) throw new Error(result.problems.join("; "));
      expect(result.env[name]).toBe(token);
    },
  );

  it.each(["API_TOKEN", "TILL_TOKEN", "INBOUND_EMAIL_TOKEN"] as const)(
    "%s with a space inside is refused: an Authorization header cannot carry it",
    (name) => {
      expect(readEnv({ [name]: "correct horse battery staple" })).toEqual({
        ok: false,
        problems: [
          `${name}: expected a token without spaces (an Authorization: Bearer header carries none)`,
        ],
      });
    },
  );
});

describe("a value of a fixed set, or of a bounded length", () => {
  it.each([
    ["NODE_ENV", "prod", 'NODE_ENV: expected production, development or test, got "prod"'],
    [
      "LOG_LEVEL",
      "verbose",
      'LOG_LEVEL: expected fatal, error, warn, info, debug, trace or silent, got "verbose"',
    ],
    ["LOG_FORMAT", "text", 'LOG_FORMAT: expected json or pretty, got "text"'],
    [
      "QUEUE_PREFIX",
      "shop/eu",
      'QUEUE_PREFIX: expected letters, digits, _ or - (at most 64), got "shop/eu"',
    ],
  ])("%s=%s is refused naming what is allowed and what was given", (name, value, problem) => {
    expect(readEnv({ [name]: value })).toEqual({ ok: false, problems: [problem] });
  });

  it.each([
    ["MAIL_FROM", "x", 'MAIL_FROM: expected a sender address such as "Shop" <hello@shop.example>'],
    ["SHOP_NAME", "s".repeat(101), "SHOP_NAME: expected at most 100 characters, got 101"],
    [
      "OTEL_SERVICE_NAME",
      "s".repeat(201),
      "OTEL_SERVICE_NAME: expected at most 200 characters, got 201",
    ],
    ["TWILIO_AUTH_TOKEN", "short", "TWILIO_AUTH_TOKEN: expected at least 8 characters"],
  ])("%s of a wrong length is refused in words, never quoting a secret", (name, value, problem) => {
    const result = readEnv(
      name === "TWILIO_AUTH_TOKEN"
        ? {
            [name]: value,
            TWILIO_ACCOUNT_SID: `AC${"0".repeat(32)}`,
            TWILIO_FROM: "+14155550123",
          }
        : name === "MAIL_FROM"
          ? { [name]: value, SMTP_URL: "smtp://mail.example:587" }
          : { [name]: value },
    );
    expect(result).toEqual({ ok: false, problems: [problem] });
  });
});

describe("PUBLIC_URL", () => {
  it.each(["https://followups.shop.example", "https://shop.example/followups/"])(
    "accepts the base URL %j",
    (value) => {
      const result = readEnv({ PUBLIC_URL: value });
      expect(result.ok && result.env.PUBLIC_URL).toBe(value);
    },
  );

  // Refused at start with the other variables, before connecting: once the HTTP server was
  // built, after Redis, it was an uncaught Error whose stack trace the operator saw.
  it.each(["https://shop.example/?a=1", "https://shop.example/#top", "https://shop.example/?"])(
    "refuses %j, which unsubscribe links and Twilio's webhooks cannot be built on",
    (value) => {
      expect(readEnv({ PUBLIC_URL: value })).toEqual({
        ok: false,
        problems: [
          "PUBLIC_URL: expected a base URL without a query string or fragment (? or #), such as https://followups.shop.example",
        ],
      });
    },
  );
});

describe("PUBLIC_URL's length", () => {
  /** The header lines of a marketing email whose unsubscribe link is built on `publicUrl`. */
  const headerLinesOn = async (
    publicUrl: string,
    mailto = "unsubscribe@shop.example",
  ): Promise<string[]> => {
    const hash = "A".repeat(22);
    // The longest language a link names: a BCP 47 language subtag of 8 letters.
    const url = unsubscribeUrl(publicUrl, "x".repeat(16), hash, "email", hash, "abcdefgh");
    const options = mailOptions(
      {
        channel: "email",
        followUpId: "fu-long-public-url",
        to: "customer@shop.example",
        subject: "An offer",
        text: "Text",
        headers: listUnsubscribeHeaders({ url, mailto }),
      },
      "shop@shop.example",
      "shop.example",
    );
    const raw = await new MailComposer(options).compile().build();
    return raw.toString().slice(0, raw.indexOf("\r\n\r\n")).split("\r\n");
  };
  const base = (length: number) => {
    const start = "https://followups.shop.example/";
    return `${start}${"p".repeat(length - start.length)}`;
  };

  it("accepts the longest base URL whose unsubscribe links keep every header line within RFC 5322's 998 characters", async () => {
    const longest = base(898);
    const result = readEnv({ PUBLIC_URL: longest });
    expect(result.ok && result.env.PUBLIC_URL).toBe(longest);
    // A trailing slash is not part of the links.
    expect(readEnv({ PUBLIC_URL: `${longest}/` }).ok).toBe(true);
    const lines = await headerLinesOn(longest);
    expect(lines.some((line) => line.includes("/unsubscribe/"))).toBe(true);
    expect(Math.max(...lines.map((line) => line.length))).toBe(998);
  });

  it("writes a base URL of other letters in ASCII in the link, so the header is not MIME-encoded and its link reaches one-click unsubscribe", async () => {
    const lines = await headerLinesOn("https://bücher.example/läden");
    const link = lines.find((line) => line.includes("/unsubscribe/"));
    expect(link).toContain("<https://xn--bcher-kva.example/l%C3%A4den/unsubscribe/");
    expect(lines.filter((line) => line.includes("=?"))).toEqual([]);
    // Every character of the header in ASCII.
    expect(lines.every((line) => /^[\x20-\x7e\t]*$/.test(line))).toBe(true);
  });

  it("measures a base URL as its links carry it, in ASCII", async () => {
    // 880 characters as written; each ü is 6 in a link (%C3%BC).
    const written = `https://followups.shop.example/${"ü".repeat(880 - 31)}`;
    expect(written.length).toBe(880);
    const ascii = 31 + 6 * (880 - 31);
    expect(Math.max(...(await headerLinesOn(written)).map((line) => line.length))).toBeGreaterThan(
      998,
    );
    expect(readEnv({ PUBLIC_URL: written })).toEqual({
      ok: false,
      problems: [
        `PUBLIC_URL: expected at most 898 characters (${ascii} given, written in ASCII as links carry it): an unsubscribe link built on it would make a List-Unsubscribe header line longer than the 998 characters RFC 5322 allows`,
      ],
    });
  });

  describe("UNSUBSCRIBE_MAILTO", () => {
    const unsubscribeMailto = (value: string) => {
      const result = readEnv({ UNSUBSCRIBE_MAILTO: value });
      return result.ok ? result.env.UNSUBSCRIBE_MAILTO : result.problems;
    };
    /** `abmelden@<labels>.example`, each label `label` repeated. */
    const address = (label: string, labels: number) =>
      `abmelden@${Array.from({ length: labels }, () => label).join(".")}.example`;

    it("takes a domain of other letters, written in punycode, so the List-Unsubscribe header stays in ASCII with its mailto", async () => {
      expect(unsubscribeMailto("abmelden@bücher.example")).toBe("abmelden@xn--bcher-kva.example");
      expect(unsubscribeMailto("abmelden@xn--bcher-kva.example")).toBe(
        "abmelden@xn--bcher-kva.example",
      );
      const lines = await headerLinesOn(
        "https://bücher.example",
        String(unsubscribeMailto("abmelden@bücher.example")),
      );
      const start = lines.findIndex((line) => line.startsWith("List-Unsubscribe:"));
      const header = lines.slice(start, start + 3).join(" ");
      expect(header).toContain("<mailto:abmelden@xn--bcher-kva.example?subject=unsubscribe%20");
      expect(lines.filter((line) => line.includes("=?"))).toEqual([]);
      expect(lines.every((line) => /^[\x20-\x7e\t]*$/.test(line))).toBe(true);
    });

    it("takes a top-level domain of other letters too, written in punycode (xn--…), as an event's address is", () => {
      expect(unsubscribeMailto("abmelden@bücher.рф")).toBe("abmelden@xn--bcher-kva.xn--p1ai");
      expect(unsubscribeMailto("abmelden@shop.中国")).toBe("abmelden@shop.xn--fiqs8s");
      expect(unsubscribeMailto("abmelden@xn--bcher-kva.xn--p1ai")).toBe(
        "abmelden@xn--bcher-kva.xn--p1ai",
      );
      expect(unsubscribeMailto("abmelden@shop.x")).toEqual([
        "UNSUBSCRIBE_MAILTO: expected an email address",
      ]);
    });

    it("refuses a mailbox name of other letters at start, naming what it expects", () => {
      expect(unsubscribeMailto("äbmelden@example.com")).toEqual([
        "UNSUBSCRIBE_MAILTO: expected an address whose mailbox name (before the @) is in ASCII, such as unsubscribe@shop.example (a domain of other letters is taken, written in punycode): mail to a mailbox name of other letters needs SMTPUTF8 all the way, which a mail provider's unsubscribe cannot be counted on for",
      ]);
      expect(unsubscribeMailto("not an address")).toEqual([
        "UNSUBSCRIBE_MAILTO: expected an email address",
      ]);
    });

    it("takes an address of 254 characters in ASCII, which keeps every header line within 998 characters with the longest PUBLIC_URL", async () => {
      // 3 + 4 × 60 + 3 + 8 characters.
      const longest = address("d".repeat(60), 4).replace("abmelden@", "ab@");
      expect(longest.length).toBe(254);
      expect(unsubscribeMailto(longest)).toBe(longest);
      const lines = await headerLinesOn(base(898), longest);
      expect(lines.some((line) => line.includes(`<mailto:${longest}?subject=`))).toBe(true);
      expect(Math.max(...lines.map((line) => line.length))).toBe(998);
    });

    it("refuses a longer one at start, measured in ASCII as List-Unsubscribe carries it", () => {
      const longer = address("d".repeat(60), 4).replace("abmelden@", "abc@");
      expect(unsubscribeMailto(longer)).toEqual([
        "UNSUBSCRIBE_MAILTO: expected an address of at most 254 characters (255 given, written in ASCII as List-Unsubscribe carries it)",
      ]);
      // 240 characters as written, 264 in punycode (each label of 55 ü is 61 characters).
      const unicode = address("ü".repeat(55), 4);
      expect(unicode.length).toBe(240);
      expect(unsubscribeMailto(unicode)).toEqual([
        "UNSUBSCRIBE_MAILTO: expected an address of at most 254 characters (264 given, written in ASCII as List-Unsubscribe carries it)",
      ]);
    });
  });

  it("refuses a base URL one character longer at start, naming the bound and why", async () => {
    const longer = base(899);
    // Such a link would be a header line of 999 characters: a relay may break it.
    expect(Math.max(...(await headerLinesOn(longer)).map((line) => line.length))).toBe(999);
    expect(readEnv({ PUBLIC_URL: longer })).toEqual({
      ok: false,
      problems: [
        "PUBLIC_URL: expected at most 898 characters (899 given): an unsubscribe link built on it would make a List-Unsubscribe header line longer than the 998 characters RFC 5322 allows",
      ],
    });
  });
});
