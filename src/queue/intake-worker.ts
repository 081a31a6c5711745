import { type Job, type JobJson, Worker } from "bullmq";

/**
 * What the intake processor gets as the data of a job whose stored data is not JSON (damaged, or
 * written by a client that is not BullMQ's), to refuse it as an invalid event.
 */
export const DATA_NOT_JSON: Readonly<Record<string, never>> = Object.freeze({});

/**
 * The input queue's worker. BullMQ's own reads a job's data before the processor runs and throws
 * on data that is not JSON: such a job stayed active, was taken again after each stall and
 * logged with a stack every minute, for ever. Here it reaches the processor, which refuses it.
 */
export class IntakeWorker extends Worker {
  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      const job = super.createJob({ ...data, data: "{}" }, jobId);
      job.data = DATA_NOT_JSON;
      return job;
    }
  }
}
