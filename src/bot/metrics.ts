import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { JOB_STATES, type JobQueue } from "../queue/job-queue.js";

/** The bot's Prometheus metrics. No metric carries a repo name, so nothing private leaks through them. */
export class BotMetrics {
  readonly registry = new Registry();
  readonly webhooks = new Counter({
    name: "safe_lora_webhooks_total",
    help: "Hub webhook deliveries by outcome (accepted, ignored, duplicate, unauthorized, forbidden, malformed; unavailable: the job could not be stored, 503)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: "safe_lora_job_duration_seconds",
    help: "Job run time by kind and outcome (committed, unchanged, skipped, refused, done; retry and error for attempts that will run again or failed)",
    labelNames: ["kind", "outcome"],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  readonly jobsFinished = new Counter({
    name: "safe_lora_jobs_finished_total",
    help: "Jobs that finished for good, by kind and outcome (committed, unchanged, skipped, refused, failed, done)",
    labelNames: ["kind", "outcome"],
    registers: [this.registry],
  });
  readonly bytesRead = new Counter({
    name: "safe_lora_bytes_read_total",
    help: "Bytes read by patch jobs, by source (base, aligned, adapter; finetuned for full fine-tunes)",
    labelNames: ["source"],
    registers: [this.registry],
  });

  constructor(queue: JobQueue) {
    new Gauge({
      name: "safe_lora_jobs",
      help: "Jobs in the queue by state",
      labelNames: ["state"],
      registers: [this.registry],
      async collect() {
        const counts = await queue.counts();
        for (const state of JOB_STATES) this.set({ state }, counts[state]);
      },
    });
  }
}
