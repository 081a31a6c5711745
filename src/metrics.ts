import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** A channel's spend this month, in major units of the default currency. */
export interface SpendReading {
  readonly channel: string;
  readonly spent: number;
}

/**
 * The worker's Prometheus metrics. Label values come from small fixed sets (channels, kinds,
 * reason codes), never from ids or addresses, so the series count stays bounded.
 */
export class FollowUpMetrics {
  readonly registry = new Registry();

  readonly replicaWaitsShort = new Counter({
    name: "followups_replica_waits_short_total",
    help: "Writes that fewer replicas than REDIS_WAIT_REPLICAS confirmed within REDIS_WAIT_TIMEOUT_MS, or that were not waited for (their node had no replica at its last wait).",
    registers: [this.registry],
  });

  readonly eventsReceived = new Counter({
    name: "followups_events_received_total",
    help: "Events taken from the queue or the HTTP endpoint, by type.",
    labelNames: ["type"],
    registers: [this.registry],
  });

  readonly eventsInvalid = new Counter({
    name: "followups_events_invalid_total",
    help: "Events rejected by the contract (kept in the failed set with their reasons).",
    registers: [this.registry],
  });

  readonly eventsIdReused = new Counter({
    name: "followups_events_id_reused_total",
    help: "Events refused because their id was used before for other content (HTTP 409 or failed job).",
    registers: [this.registry],
  });

  readonly eventsRetried = new Counter({
    name: "followups_events_retried_total",
    help: "Event intakes that failed on an error (Redis unreachable, a bug) and will be tried again.",
    registers: [this.registry],
  });

  readonly refundsRefused = new Counter({
    name: "followups_refunds_refused_total",
    help: "Refund events refused because their currency is not their order's (kept in the failed set with the reason).",
    registers: [this.registry],
  });

  readonly eventsFailed = new Counter({
    name: "followups_events_failed_total",
    help: "Events whose intake failed on every attempt (kept in the failed set; publish again to retry).",
    registers: [this.registry],
  });

  readonly eventsOfErased = new Counter({
    name: "followups_events_of_erased_customers_total",
    help: "Purchase events about a customer erased after them, dropped without storing anything.",
    registers: [this.registry],
  });

  readonly erasures = new Counter({
    name: "followups_erasures_total",
    help: "Customers this worker erased on request (customer.erased event, admin API or console; the erase command runs in its own process, uncounted here).",
    registers: [this.registry],
  });

  readonly codeRedemptions = new Counter({
    name: "followups_discount_redemptions_total",
    help: "Discount codes presented for redemption (till, checkout or a purchase's discountCodes), by result: redeemed, taken (by another order), expired, revoked (its customer erased), unknown.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  readonly scheduled = new Counter({
    name: "followups_scheduled_total",
    help: "Follow-ups scheduled as delayed jobs.",
    labelNames: ["channel", "kind"],
    registers: [this.registry],
  });

  readonly sent = new Counter({
    name: "followups_sent_total",
    help: "Follow-ups the provider accepted.",
    labelNames: ["channel", "kind"],
    registers: [this.registry],
  });

  readonly failed = new Counter({
    name: "followups_failed_total",
    help: "Follow-ups failed for good, by failure class and provider code.",
    labelNames: ["channel", "kind", "reason"],
    registers: [this.registry],
  });

  readonly skipped = new Counter({
    name: "followups_skipped_total",
    help: "Follow-ups not sent, by reason (at planning or at send time).",
    labelNames: ["channel", "kind", "reason"],
    registers: [this.registry],
  });

  readonly cancelled = new Counter({
    name: "followups_cancelled_total",
    help: "Pending follow-ups cancelled, by reason (refunds).",
    labelNames: ["channel", "kind", "reason"],
    registers: [this.registry],
  });

  readonly promoted = new Counter({
    name: "followups_promoted_total",
    help: "Steps moved from the compact schedule into the follow-ups queue shortly before they fall due.",
    registers: [this.registry],
  });

  readonly replanFailures = new Counter({
    name: "followups_replan_failures_total",
    help: "Purchases whose re-plan under newer rules failed on something other than Redis being away (a stored purchase that cannot be decoded, a planning bug), by where: walk (noted to be tried again, the walk goes on), noted (tried again later), promotion (its steps become jobs as planned).",
    labelNames: ["during"] as const,
    registers: [this.registry],
  });

  readonly lostJobs = new Counter({
    name: "followups_lost_jobs_total",
    help: "Follow-ups left scheduled or sending whose job was gone (removed with queue tools, lost in a failover): queued again within their grace period (`requeued`), or skipped as `job-lost` after it (`skipped`).",
    labelNames: ["outcome"],
    registers: [this.registry],
  });

  readonly replanGivenUp = new Counter({
    name: "followups_replan_given_up_total",
    help: "Purchases noted for re-planning under newer rules whose re-plan failed at every try (8, over about two hours) and was given up: their steps stay as planned, and the promoter tries the re-plan once more before they become jobs.",
    registers: [this.registry],
  });

  readonly retried = new Counter({
    name: "followups_retries_total",
    help: "Transient send failures that will be retried.",
    labelNames: ["channel"],
    registers: [this.registry],
  });

  readonly possibleDuplicates = new Counter({
    name: "followups_possible_duplicates_total",
    help: "Sends that may reach the customer twice: taken over from a vanished worker, retried after a connection broke mid-handover, or a joined thank-you sent on its own while the one listing it stays stuck mid-send.",
    labelNames: ["cause"],
    registers: [this.registry],
  });

  readonly alertsSent = new Counter({
    name: "followups_alerts_sent_total",
    help: "Alert emails sent to owners about unhappy replies.",
    registers: [this.registry],
  });

  readonly alertsBundled = new Counter({
    name: "followups_alerts_bundled_total",
    help: "Unhappy replies that went out in an alert together with an earlier one (a bundle).",
    registers: [this.registry],
  });

  readonly alertsFailed = new Counter({
    name: "followups_alerts_failed_total",
    help: "Alert emails that failed to send (retried with backoff).",
    registers: [this.registry],
  });

  readonly reportsSent = new Counter({
    name: "followups_reports_sent_total",
    help: "Owner reports sent.",
    registers: [this.registry],
  });

  readonly reportsFailed = new Counter({
    name: "followups_reports_failed_total",
    help: "Owner report attempts that failed (each is retried with backoff).",
    registers: [this.registry],
  });

  readonly sendLatency = new Histogram({
    name: "followups_send_latency_seconds",
    help: "From the moment a follow-up was due to the provider accepting it.",
    labelNames: ["channel"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600],
    registers: [this.registry],
  });

  private readonly trackedQueues: {
    name: string;
    getJobCounts(): Promise<Record<string, number>>;
  }[] = [];

  readonly queueDepth = new Gauge({
    name: "followups_queue_jobs",
    help: "Jobs per queue and state, read when metrics are scraped.",
    labelNames: ["queue", "state"],
    registers: [this.registry],
    collect: async () => {
      // A queue per shard (follow-ups) is summed under its one name.
      const totals = new Map<string, Map<string, number>>();
      const counts = await Promise.all(
        this.trackedQueues.map((queue) =>
          queue.getJobCounts().catch(() => ({}) as Record<string, number>),
        ),
      );
      this.trackedQueues.forEach((queue, index) => {
        const byState = totals.get(queue.name) ?? new Map<string, number>();
        for (const [state, count] of Object.entries(counts[index] ?? {}))
          byState.set(state, (byState.get(state) ?? 0) + count);
        totals.set(queue.name, byState);
      });
      for (const [queue, byState] of totals)
        for (const [state, count] of byState) this.queueDepth.set({ queue, state }, count);
    },
  });

  readonly unservedShards = new Gauge({
    name: "followups_unserved_shards",
    help: "Shards whose follow-ups queue no worker serves (FOLLOW_UP_SHARDS_SERVED leaves them out), as this worker last looked.",
    registers: [this.registry],
  });

  readonly writeRefusalPauses = new Counter({
    name: "followups_write_refusal_pauses_total",
    help: "Pauses of a worker (intake, delivery N, reports, alerts) because Redis refused one of its writes (out of memory, or unable to save its snapshot): it takes no new jobs for 5 s, then tries again.",
    labelNames: ["worker"],
    registers: [this.registry],
  });

  readonly webhookSpoolFiles = new Gauge({
    name: "followups_webhook_spool_files",
    help: "Webhooks in this worker's spool (WEBHOOK_SPOOL_DIR), as its replay last looked (every 5 s): waiting for Redis, or failed (moved aside to failed/, never replayed; see the error logs).",
    labelNames: ["state"] as const,
    registers: [this.registry],
  });

  private spendReader: (() => Promise<readonly SpendReading[]>) | undefined;

  readonly spend = new Gauge({
    name: "followups_spend_this_month",
    help: "What SMS and calls cost this calendar month so far (the rules' default currency and zone), read from Redis when scraped.",
    labelNames: ["channel"],
    registers: [this.registry],
    collect: async () => {
      this.spend.reset();
      for (const reading of (await this.spendReader?.().catch(() => [])) ?? [])
        this.spend.set({ channel: reading.channel }, reading.spent);
    },
  });

  readonly budget = new Gauge({
    name: "followups_budget_monthly",
    help: "The monthly budget per channel (budget in the rules), in the default currency.",
    labelNames: ["channel"],
    registers: [this.registry],
    collect: () => {
      this.budget.reset();
      for (const { channel, budget } of this.budgetReader?.() ?? [])
        this.budget.set({ channel }, budget);
    },
  });

  private budgetReader: (() => readonly { channel: string; budget: number }[]) | undefined;

  /**
   * Where this month's spend per channel is read at scrape time (Redis), and the budgets (the
   * rules: no I/O).
   */
  trackSpend(
    spent: () => Promise<readonly SpendReading[]>,
    budgets: () => readonly { channel: string; budget: number }[],
  ): void {
    this.spendReader = spent;
    this.budgetReader = budgets;
  }

  /** Queues whose depths are read at scrape time (so an idle worker still reports them). */
  trackQueues(
    queues: readonly { name: string; getJobCounts(): Promise<Record<string, number>> }[],
  ): void {
    this.trackedQueues.push(...queues);
  }
}
