import twilio from "twilio";
import { type PipelineHarness, TWILIO_TOKEN } from "./pipeline-harness.js";

/** Where the pipeline's worker serves HTTP. */
export function httpAddressOf(p: PipelineHarness): string {
  const address = p.worker?.httpAddress;
  if (!address) throw new Error("HTTP is not listening");
  return address;
}

/** Posts a form to a Twilio webhook, signed as Twilio would sign it (or with `signature`). */
export async function postTwilio(
  p: PipelineHarness,
  route: string,
  params: Record<string, string>,
  signature?: string,
): Promise<Response> {
  return postTwilioAt(httpAddressOf(p), p, route, params, signature);
}

/** postTwilio to a worker serving HTTP at `address` (one in a process of its own). */
export async function postTwilioAt(
  address: string,
  p: PipelineHarness,
  route: string,
  params: Record<string, string>,
  signature?: string,
): Promise<Response> {
  const publicUrl = `${p.envVars.PUBLIC_URL}${route}`;
  return fetch(`${address}${route}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature":
        signature ?? twilio.getExpectedTwilioSignature(TWILIO_TOKEN, publicUrl, params),
    },
    body: new URLSearchParams(params).toString(),
  });
}
