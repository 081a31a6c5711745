import type { Worker } from "bullmq";
import type { DateTime } from "luxon";
import type { AdminToken } from "./config/env.js";
import { parseEvent } from "./domain/events.js";
import { HANG_UP } from "./domain/voice-call.js";
import {
  type AdminApi,
  type AdminRequest,
  type HttpDeps,
  UnavailableError,
} from "./http/http-deps.js";
import {
  MAX_SPOOLED_WEBHOOKS,
  type SpooledInput,
  type SpooledKey,
  spoolEntry,
  type WebhookSpool,
} from "./http/webhook-spool.js";
import type { Logger } from "./logger.js";
import type { FollowUpMetrics } from "./metrics.js";
import {
  OPERATOR_ERROR_STATUS,
  OperatorError,
  type OperatorTools,
  parseStepRef,
} from "./operations/operator-tools.js";
import { EventIdConflictError, type EventPublisher, InvalidEventError } from "./publisher.js";
import { settlesWithin } from "./shutdown.js";
import {
  type DeploymentEventIds,
  type EventIdRegistry,
  idTakenByAnother,
} from "./store/event-ids.js";
import {
  acceptsWrites,
  isRedisUnavailable,
  type RedisClient,
  servesNow,
} from "./store/redis-client.js";
import { replicaWaitsWithin } from "./store/replica-wait.js";
import type { Shards } from "./store/shards.js";

/** /readyz answers within this, Redis or not: orchestrators poll it with short timeouts. */
const READINESS_TIMEOUT_MS = 500;
/** Retry-After of a 503 while Redis is away; ioredis retries the connection every 2 s at most. */
const RETRY_AFTER_SECONDS = 5;

/**
 * POST /v1/events: validates, refuses an id the worker took before for other content (its job may
 * be cleaned up already; one still queued the publisher tells apart itself), and enqueues through
 * the same EventPublisher other services use. The id is looked up where intake claims it: in the
 * shard of the event's customer, and for a refund (which names none) in shard 0.
 */
export function acceptEventWith(deps: {
  readonly publisher: EventPublisher;
  /** Every shard's event ids, on the HTTP connection, which never waits for Redis. */
  readonly shards: Pick<
    Shards<{ readonly eventIds: Pick<EventIdRegistry, "conflicts"> }>,
    "of" | "ofCustomer"
  >;
  /** With several shards: the ids claimed for the whole deployment. */
  readonly deploymentIds?: Pick<DeploymentEventIds, "conflicts">;
  readonly metrics: FollowUpMetrics;
  readonly clock: () => DateTime;
}): HttpDeps["acceptEvent"] {
  return async (input) => {
    try {
      const parsed = parseEvent(input, { now: deps.clock() });
      if (parsed.ok && (await idTakenByAnother(parsed.event, deps.shards, deps.deploymentIds))) {
        deps.metrics.eventsIdReused.inc();
        return { ok: false, reusedId: parsed.event.id };
      }
      const { eventId } = await deps.publisher.publish(input as never);
      return { ok: true, eventId };
    } catch (error) {
      if (error instanceof InvalidEventError) return { ok: false, problems: [...error.problems] };
      if (error instanceof EventIdConflictError) {
        deps.metrics.eventsIdReused.inc();
        return { ok: false, reusedId: error.eventId };
      }
      // A valid event that could not be stored (Redis away, refusing writes, too slow): the
      // client should send it again, which the event id makes safe even if it was stored.
      throw new UnavailableError("could not enqueue the event", RETRY_AFTER_SECONDS, {
        cause: error,
      });
    }
  };
}

/**
 * /readyz: Redis serves now (on a cluster, a master reports its state ok) and takes writes, and the
 * workers run.
 */
export function readinessWith(deps: {
  /** The job connection: its state is known without asking. */
  readonly redis: RedisClient;
  /** The connection webhooks are handled on (failFast): likewise. */
  readonly webhookRedis: RedisClient;
  /**
   * The connection that never waits: its ping (on a cluster, the cluster's state) proves Redis
   * serves, bounded in time.
   */
  readonly httpRedis: RedisClient;
  readonly workers: readonly Pick<Worker, "isRunning">[];
}): HttpDeps["readiness"] {
  return async () => {
    const pong = servesNow(deps.httpRedis).catch(() => false);
    // Redis out of memory (or unable to save) still answers PING but refuses every write.
    const writable = acceptsWrites(deps.httpRedis).catch(() => false);
    const within = (answer: Promise<boolean>) =>
      settlesWithin(answer, READINESS_TIMEOUT_MS).then((settled) => settled && answer);
    const jobsConnected = deps.redis.status === "ready" && deps.webhookRedis.status === "ready";
    const [redisUp, redisWrites] = await Promise.all([within(pong), within(writable)]);
    const checks = {
      redis: jobsConnected && redisUp,
      redisWrites: jobsConnected && redisUp && redisWrites,
      rules: true,
      workers: deps.workers.every((worker) => worker.isRunning()),
    };
    return { ready: Object.values(checks).every(Boolean), checks };
  };
}

/**
 * The admin API's requests carried out by the operator tools; a refusal they explain becomes its
 * status (404 unknown, 409 nothing to do or not allowed now, 400 malformed), and Redis away a 503.
 */
export function adminApiWith(deps: {
  readonly tools: OperatorTools;
  readonly tokens: readonly AdminToken[];
  /** The connection the tools use: when it is not ready, a failure is Redis being away. */
  readonly redis: RedisClient;
}): AdminApi {
  const { tools } = deps;
  const carryOut = async (request: AdminRequest, by: string): Promise<unknown> => {
    switch (request.op) {
      case "customer":
        return tools.customer(request.customerId);
      case "customers-by-address":
        return { customers: await tools.customersByAddress(request.address) };
      case "order":
        return tools.order(request.orderId);
      case "cancel-step":
        return tools.cancel(
          { step: request.ref },
          { by, ...(request.reason !== undefined && { reason: request.reason }) },
        );
      case "resend-step":
        return tools.resend(request.ref, by);
      case "failed":
        return { failed: await tools.failed(request) };
      case "retry-failed": {
        // As `followups failed --retry`: a malformed reference is a bad request, nothing to
        // retry a conflict (409), not an empty success.
        for (const ref of request.refs ?? []) parseStepRef(ref);
        const failed = await tools.failed(request);
        if (failed.length === 0)
          throw new OperatorError(
            request.refs
              ? "nothing to retry: none of those follow-ups has failed"
              : "nothing to retry: no failed follow-ups",
            "conflict",
          );
        const { requeued } = await tools.retryFailed(
          { ...request, refs: failed.map((item) => item.ref) },
          by,
        );
        return { failed, requeued: requeued.length, refs: requeued };
      }
      case "erase":
        return tools.erase(request.customerId, { by });
      case "opt-out":
      case "opt-out-address": {
        const choice = {
          by,
          ...(request.channels && { channels: request.channels }),
          ...(request.offersOnly && { offersOnly: true }),
        };
        if (request.op === "opt-out") return tools.optOut({ customer: request.customerId }, choice);
        return tools.optOut(
          "email" in request ? { email: request.email } : { phone: request.phone },
          choice,
        );
      }
      case "resolve-reply":
        return tools.resolve(request.replyId, {
          by,
          ...(request.note !== undefined && { note: request.note }),
        });
      case "schedule":
        return tools.schedule(request.days);
      case "audit":
        return { entries: await tools.auditEntries(request) };
      case "refused":
        return { refused: await tools.refusedEvents(request.limit) };
    }
  };
  return {
    tokens: deps.tokens,
    async run(request, by) {
      try {
        return { status: 200, body: await carryOut(request, by) };
      } catch (error) {
        if (error instanceof OperatorError) {
          return { status: OPERATOR_ERROR_STATUS[error.kind], body: { error: error.message } };
        }
        // Redis away, frozen (a command timed out on a connection that still looks up) or
        // failing over: a 503 to retry, not a 500.
        if (isRedisUnavailable(error, deps.redis))
          throw new UnavailableError("Redis is not reachable", RETRY_AFTER_SECONDS, {
            cause: error,
          });
        throw error;
      }
    },
  };
}

/** Longest an HTTP client waits for an answer that needs the webhooks' connection to Redis. */
const ANSWER_WITHIN_MS = 2_000;

/**
 * How long the replica waits (REDIS_WAIT_REPLICAS) of one such answer take in all, at most: half
 * of ANSWER_WITHIN_MS, so that an opt-out written and then waited for up to REDIS_WAIT_TIMEOUT_MS
 * is not answered 503 (Twilio retrying, the customer shown an error page) while a replica lags.
 */
const REPLICA_WAITS_WITHIN_MS = ANSWER_WITHIN_MS / 2;

/**
 * A handler for webhooks, tills and unsubscribe links whose stores use a connection that waits
 * for Redis while it is away (the webhooks' own, connectWebhookRedis): answered 503 with
 * Retry-After at once when that connection is not up, and after ANSWER_WITHIN_MS when Redis
 * holds it (frozen, or a failover), so Twilio and tills retry instead of hanging. A handler cut
 * off that way may still finish its work once Redis answers; what the retry does again is counted once (webhook receipts, codes
 * redeemed per order). Its replica waits end within REPLICA_WAITS_WITHIN_MS in all.
 */
export function failFast(redis: RedisClient) {
  return <A extends unknown[], R>(handler: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (redis.status !== "ready")
        throw new UnavailableError("Redis is not reachable", RETRY_AFTER_SECONDS);
      const work = replicaWaitsWithin(REPLICA_WAITS_WITHIN_MS, () => handler(...args));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new UnavailableError("Redis did not answer in time", RETRY_AFTER_SECONDS)),
          ANSWER_WITHIN_MS,
        );
      });
      try {
        return await Promise.race([work, late]);
      } catch (error) {
        // Redis refusing the work now (out of memory, loading, failing over) is Redis away for
        // the caller: a 503 to retry, and a Twilio webhook spooled, not a 500 that loses it.
        if (!(error instanceof UnavailableError) && isRedisUnavailable(error))
          throw new UnavailableError("Redis cannot serve the request now", RETRY_AFTER_SECONDS, {
            cause: error,
          });
        throw error;
      } finally {
        clearTimeout(timer);
        // Settled later, or never: nobody waits for it, and a failure is not unhandled.
        work.catch(() => undefined);
      }
    };
}

/** What a route's spooling needs besides its handler: the spool, the clock, the logger. */
interface SpoolingDeps<H> {
  readonly handle: H;
  readonly spool: Pick<WebhookSpool, "add" | "dir">;
  readonly now: () => number;
  readonly logger: Logger;
  /**
   * Whether the spool holds webhooks not handled yet (Redis just came back, or the worker just
   * started): a webhook that must not overtake them is spooled behind them, also with Redis up.
   */
  readonly waiting?: () => Promise<boolean>;
}

/**
 * A Twilio webhook's handling while Redis is away: Twilio does not send a webhook again after a
 * 5xx, so a verified request is written to the spool (under `key`) and answered as
 * `spooledAnswer`, to be handled once Redis is back (createSpoolReplay). A spool that is full or
 * cannot be written leaves the 503.
 */
function spoolOnOutage<K extends SpooledKey, A>(
  key: K,
  how: {
    readonly spooledAnswer: A;
    /** The webhook, as the logs name it. */
    readonly what: string;
    /** Its ids for the log line (never a number or words). */
    readonly ids: (input: SpooledInput<K>) => Record<string, string>;
    /** Whether the log line names the file: not where its name derives from a customer id. */
    readonly logsFile?: false;
  },
) {
  return <R>(
    deps: SpoolingDeps<(input: SpooledInput<K>) => Promise<R>>,
  ): ((input: SpooledInput<K>) => Promise<R | A>) =>
    async (input) => {
      const receivedAt = deps.now();
      if (deps.waiting && (await deps.waiting())) {
        // Behind those waiting, replayed in the order they came: handled now, a START Twilio
        // delivers again while its first delivery waits would overtake a STOP sent after it.
        const file = await deps.spool.add(spoolEntry(key, input, receivedAt)).catch(() => false);
        if (file !== false) {
          deps.logger.info(
            { ...(how.logsFile !== false && { file }), ...how.ids(input) },
            `${how.what} spooled behind the webhooks waiting in the spool, handled in the order they came`,
          );
          return how.spooledAnswer;
        }
        // A spool that is full or cannot be written: handled now, as it would be without them.
      }
      try {
        return await deps.handle(input);
      } catch (error) {
        if (!(error instanceof UnavailableError)) throw error;
        let file: string | false;
        try {
          file = await deps.spool.add(spoolEntry(key, input, receivedAt));
        } catch (spoolError) {
          deps.logger.error(
            { err: spoolError, dir: deps.spool.dir },
            `cannot write ${how.what} to the webhook spool (WEBHOOK_SPOOL_DIR): answering 503`,
          );
          throw error;
        }
        if (file === false) {
          deps.logger.error(
            { dir: deps.spool.dir, maxFiles: MAX_SPOOLED_WEBHOOKS },
            "the webhook spool is full: answering 503",
          );
          throw error;
        }
        deps.logger.warn(
          // Why, when Redis answered (out of memory, say): the reply and the command's name only.
          {
            ...(how.logsFile !== false && { file }),
            ...how.ids(input),
            ...(error.cause !== undefined && { err: error.cause }),
          },
          `Redis is unavailable: ${how.what} spooled to disk, handled once Redis is back`,
        );
        return how.spooledAnswer;
      }
    };
}

/**
 * POST /webhooks/twilio/inbound while Redis is away: a verified message (a STOP above all) is
 * spooled and answered 200 (spoolOnOutage); so is one that comes while the spool holds webhooks
 * not handled yet (with `waiting`), so that keywords are applied in the order they came.
 */
export const spoolWhenUnavailable = spoolOnOutage("message", {
  spooledAnswer: "spooled" as const,
  what: "inbound SMS",
  ids: (message) => ({ messageSid: message.messageSid }),
});

/**
 * POST /unsubscribe/{token} while Redis is away: a verified request (a mail provider's one-click
 * POST is not sent again) is spooled, and answered as done (spoolOnOutage).
 */
export const spoolUnsubscribeWhenUnavailable = spoolOnOutage("unsubscribe", {
  spooledAnswer: "spooled" as const,
  what: "unsubscribe",
  ids: (request) => ({ channel: request.channel, source: request.source, scope: request.scope }),
  // Its file's name is a digest of the request, customer id included (WebhookSpool.add).
  logsFile: false,
});

/**
 * POST /webhooks/twilio/voice/gather while Redis is away: the verified answer (a 9 above all) is
 * spooled, and the call hung up on, as when its record is not found: without Redis, its language
 * is not known to say anything in. Replayed through VoiceCalls.gathered.
 */
export const spoolGatherWhenUnavailable = spoolOnOutage("gather", {
  spooledAnswer: HANG_UP,
  what: "a voice call's answer",
  ids: (gather) => ({ callSid: gather.callSid }),
});

/**
 * POST /webhooks/twilio/status while Redis is away: the verified delivery report (undelivered,
 * a 21610 opt-out among them) is spooled and answered as usual (204), and replayed through
 * CustomerFeedback.smsStatus, dated when it arrived.
 */
export const spoolSmsStatusWhenUnavailable = spoolOnOutage("smsStatus", {
  spooledAnswer: "spooled" as const,
  what: "an SMS status callback",
  ids: (update) => ({ messageSid: update.messageSid, status: update.status }),
});

/**
 * POST /webhooks/twilio/voice/status while Redis is away: how the call ended is spooled and
 * answered as usual (204), and replayed through VoiceCalls.status, dated when it arrived, so the
 * step gets its outcome (and its fallback) instead of `call-outcome-unknown`.
 */
export const spoolCallStatusWhenUnavailable = spoolOnOutage("callStatus", {
  spooledAnswer: "spooled" as const,
  what: "a voice call's status callback",
  ids: (status) => ({ callSid: status.callSid, callStatus: status.callStatus }),
});

/** The answer webhook of a call picked up while Redis is away, spooled (hangUpWhenUnavailable). */
const spoolUnheard = spoolOnOutage("unheard", {
  spooledAnswer: HANG_UP,
  what: "a call picked up",
  ids: (call) => ({ callSid: call.callSid }),
});

/**
 * POST /webhooks/twilio/voice/answer while Redis is away: the call is hung up on. A 503 would have
 * Twilio tell the customer "an application error has occurred", and the script (what to say, in
 * which language) is in Redis. The pick-up is spooled, so that once Redis is back the call is
 * recorded as `unheard` (VoiceCalls.unheard) before its status callback's `completed`, which
 * would otherwise read as a person reached and skip its fallback. Hung up on also when the spool
 * cannot take it.
 */
export function hangUpWhenUnavailable(
  deps: SpoolingDeps<HttpDeps["voiceCall"]["answered"]>,
): HttpDeps["voiceCall"]["answered"] {
  const spooling = spoolUnheard(deps);
  return async (request) => {
    try {
      return await spooling(request);
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      deps.logger.warn(
        { callSid: request.callSid },
        "Redis is unavailable: a call was picked up with no script to play, and hung up on",
      );
      return HANG_UP;
    }
  };
}
