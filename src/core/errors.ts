/**
 * The closed catalogue of tickflow errors. Callers branch on `code` and `retriable`,
 * never on message text. Messages are one line and say what to do.
 */
export const ErrorCodes = {
  BAD_FLAG: { exit: 2, retriable: false },
  BAD_CONFIG: { exit: 2, retriable: false },
  BAD_INPUT: { exit: 1, retriable: false },
  LOG_UNAVAILABLE: { exit: 3, retriable: true },
  LOG_ERROR: { exit: 3, retriable: false },
  /** Kafka stayed unavailable for longer than --retry-for. */
  LOG_LOST: { exit: 3, retriable: false },
  DB_UNAVAILABLE: { exit: 4, retriable: true },
  DB_ERROR: { exit: 4, retriable: false },
  /** A transaction lost a race (serialization failure, deadlock) and was rolled back: run it again. */
  DB_CONFLICT: { exit: 4, retriable: true },
  /** PostgreSQL stayed unavailable for longer than --retry-for. */
  DB_LOST: { exit: 4, retriable: false },
  FENCED: { exit: 5, retriable: false },
  UNKNOWN_TOPIC: { exit: 1, retriable: false },
  INFRA: { exit: 6, retriable: false },
  INTERNAL: { exit: 70, retriable: false },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class TickflowError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly exitCode: number;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TickflowError';
    this.code = code;
    this.retriable = ErrorCodes[code].retriable;
    this.exitCode = ErrorCodes[code].exit;
    this.details = details;
  }
}

export function isTickflowError(error: unknown, code?: ErrorCode): error is TickflowError {
  return error instanceof TickflowError && (code === undefined || error.code === code);
}
