import { createHash, timingSafeEqual } from "node:crypto";

/** How a presented Authorization header compares with the configured API token. */
export type BearerCheck = "ok" | "missing" | "wrong";

/**
 * Compares in constant time: both sides are hashed to 32 bytes first, so neither the content nor
 * the length of the configured token shows in the response time.
 */
export function checkBearerToken(authorization: unknown, expected: string): BearerCheck {
  if (typeof authorization !== "string" || authorization.trim() === "") return "missing";
  const presented = /^Bearer +(\S+) *$/i.exec(authorization)?.[1] ?? "";
  const equal = timingSafeEqual(digest(presented), digest(expected));
  return equal && presented !== "" ? "ok" : "wrong";
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Which of several named tokens an Authorization header carries (the admin API's operators),
 * comparing with every one of them in constant time, so the answer's timing says nothing.
 */
export function matchBearerToken(
  authorization: unknown,
  tokens: readonly { readonly name: string; readonly token: string }[],
): { check: "ok"; name: string } | { check: "missing" | "wrong" } {
  if (typeof authorization !== "string" || authorization.trim() === "") return { check: "missing" };
  const name = tokenOwner(/^Bearer +(\S+) *$/i.exec(authorization)?.[1] ?? "", tokens);
  return name === undefined ? { check: "wrong" } : { check: "ok", name };
}

/** The name of the token presented (a sign-in form, a bearer header), compared in constant time. */
export function tokenOwner(
  presented: string,
  tokens: readonly { readonly name: string; readonly token: string }[],
): string | undefined {
  const presentedDigest = digest(presented);
  let name: string | undefined;
  for (const entry of tokens) {
    if (timingSafeEqual(presentedDigest, digest(entry.token)) && presented !== "")
      name ??= entry.name;
  }
  return name;
}
