/**
 * The API's closed catalogue of errors: a stable code, its HTTP status, and (for bad
 * input) the parameter at fault. Clients branch on `code`, never on the message.
 * Every error response has the same body: `{"error": {"code", "message", "parameter"?}}`.
 */
export const ApiErrorCodes = {
  BAD_PARAMETER: { status: 400, description: 'A query parameter is malformed, out of range or unknown' },
  BAD_TIME_RANGE: { status: 400, description: 'endTime is before startTime' },
  BAD_CURSOR: { status: 400, description: 'The cursor is not one this API returned for this kind of query' },
  UNKNOWN_TICKER: { status: 400, description: 'No aggregates exist for a requested ticker' },
  NOT_FOUND: { status: 404, description: 'No such route' },
  NOT_READY: { status: 503, description: 'The database is not reachable or not migrated' },
  DATABASE_UNAVAILABLE: { status: 503, description: 'The database is unavailable; retry later' },
  INTERNAL: { status: 500, description: 'An unexpected failure (logged)' },
} as const;

export type ApiErrorCode = keyof typeof ApiErrorCodes;

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly parameter: string | undefined;

  constructor(code: ApiErrorCode, message: string, parameter?: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = ApiErrorCodes[code].status;
    this.parameter = parameter;
  }

  toBody(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.parameter ? { parameter: this.parameter } : {}) } };
  }
}

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; parameter?: string };
}

export const errorBodySchema = {
  $id: 'ApiError',
  type: 'object',
  description: 'Every error response',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(ApiErrorCodes), description: 'Stable error code' },
        message: { type: 'string', description: 'What was wrong and what to do' },
        parameter: { type: 'string', description: 'The query parameter at fault, for 400s' },
      },
    },
  },
} as const;
