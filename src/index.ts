/**
 * The library surface for Node services: the typed publisher and the event contract, plus the
 * pure planner for services that want to preview follow-ups themselves.
 */
export {
  type CustomerUnsubscribed,
  EVENT_TYPES,
  type EventProblem,
  type EventType,
  eventSchema,
  type FollowUpEvent,
  type FollowUpEventInput,
  type PurchaseCompleted,
  type PurchaseCompletedInput,
  type PurchaseRefunded,
  parseEvent,
} from "./domain/events.js";
export { type Plan, type PlannedStep, planFollowUps, type SkippedStep } from "./domain/planner.js";
export {
  EventIdConflictError,
  EventPublisher,
  InvalidEventError,
  type PublisherOptions,
} from "./publisher.js";
export { FOLLOW_UPS_QUEUE, PURCHASE_EVENTS_QUEUE } from "./queue/names.js";
