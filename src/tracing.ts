import type { Tracer } from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import type { Env } from "./config/env.js";

/**
 * Optional OpenTelemetry traces (README, "Traces (OpenTelemetry)"): on when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set, off by default. Off, no SDK is loaded and nothing is made;
 * on, a tracer provider of its own (nothing registered globally) sends batches of spans over
 * OTLP/HTTP. The worker records with the tracer and shuts this down when it closes.
 */
export interface Tracing {
  /** What the worker records spans with; undefined when tracing is off. */
  readonly tracer?: Tracer;
  /** Sends the spans still buffered, then stops (nothing to do when off). */
  shutdown(): Promise<void>;
}

/** Told when a batch of spans could not be sent: how many, and why (the exporter's message). */
export type ExportFailureReport = (failure: { spans: number; reason: string }) => void;

/**
 * Tracing as the environment asks: off without OTEL_EXPORTER_OTLP_ENDPOINT. A batch the collector
 * did not take (down, refusing, too slow) is dropped, as OpenTelemetry does, and reported to
 * `onExportFailure`.
 */
export async function createTracing(
  env: Pick<Env, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_SERVICE_NAME">,
  onExportFailure?: ExportFailureReport,
): Promise<Tracing> {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint === undefined) return { shutdown: async () => {} };
  const [
    { ExportResultCode },
    { BatchSpanProcessor, TracerProvider },
    { OTLPTraceExporter },
    { resourceFromAttributes },
  ] = await Promise.all([
    import("@opentelemetry/core"),
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  // Headers, timeout and certificates: the exporter reads the standard OTEL_EXPORTER_OTLP_* itself.
  const otlp = new OTLPTraceExporter({ url: tracesUrl(endpoint) });
  const exporter: SpanExporter = {
    export(spans, done) {
      otlp.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS)
          onExportFailure?.({ spans: spans.length, reason: result.error?.message ?? "unknown" });
        done(result);
      });
    },
    shutdown: () => otlp.shutdown(),
    forceFlush: () => otlp.forceFlush(),
  };
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME }),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  return { tracer: provider.getTracer("followups"), shutdown: () => provider.shutdown() };
}

/**
 * Where OTLP/HTTP traces go for an OTEL_EXPORTER_OTLP_ENDPOINT: its `v1/traces` path, as the
 * OpenTelemetry exporters derive it (`http://collector:4318` → `http://collector:4318/v1/traces`).
 */
export function tracesUrl(endpoint: string): string {
  return new URL("v1/traces", endpoint.endsWith("/") ? endpoint : `${endpoint}/`).toString();
}
