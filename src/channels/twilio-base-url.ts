import twilio from "twilio";
import type TwilioRequestClient from "twilio/lib/base/RequestClient.js";

/** Transport options passed through to the SDK's RequestClient (retry options are not accepted). */
export type TwilioHttpClientOptions = Omit<
  TwilioRequestClient.RequestClientOptions,
  "autoRetry" | "maxRetries" | "maxRetryDelay"
>;

/** Twilio SDK RequestClient that sends every request to a fixed base URL, never auto-retrying. */
export class BaseUrlRequestClient extends twilio.RequestClient {
  readonly baseUrl: URL;

  constructor(baseUrl: string, options: TwilioHttpClientOptions = {}) {
    super({ ...options, autoRetry: false });
    this.baseUrl = new URL(baseUrl);
  }

  override request<TData>(options: TwilioRequestClient.RequestOptions<TData>) {
    return super.request({ ...options, uri: this.redirect(options.uri) });
  }

  /** Maps an SDK URL (any Twilio host) onto the base URL, keeping path and query. */
  redirect(uri: string): string {
    const original = new URL(uri);
    const target = new URL(this.baseUrl);
    target.pathname = `${target.pathname.replace(/\/+$/, "")}${original.pathname}`;
    target.search = original.search;
    return target.href;
  }
}

/** Creates the `httpClient` option for `twilio(sid, token, { httpClient })` pointing at baseUrl. */
export function createTwilioHttpClient(
  baseUrl: string,
  options: TwilioHttpClientOptions = {},
): BaseUrlRequestClient {
  return new BaseUrlRequestClient(baseUrl, options);
}
