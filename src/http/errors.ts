/**
 * The API's closed catalogue of errors: a stable code, its HTTP status, and (for bad
 * input) the parameter at fault. Clients branch on `code`, never on the message.
 * Every error response, whatever its status and whoever raised it (a route, the schema
 * validator, Fastify's router and body parser, Node's HTTP parser), has the same body:
 * `{"error": {"code", "message", "parameter"?}}`. Messages never carry internals (no
 * SQLSTATE, database URL, stack or library error code): those go to the log.
 */
export const ApiErrorCodes = {
  BAD_PARAMETER: { status: 400, description: 'A query parameter is malformed, out of range or unknown' },
  BAD_TIME_RANGE: { status: 400, description: 'The end of the time range is before its start (endTime before startTime; for unique users, to not after from)' },
  TOO_MANY_BUCKETS: { status: 400, description: 'The range holds more windows of the granularity than one answer may; ask for a shorter range or a coarser granularity' },
  BAD_CURSOR: { status: 400, description: 'The cursor is not one this API returned for this kind of query' },
  UNKNOWN_TICKER: { status: 400, description: 'No aggregates exist for a requested ticker' },
  BAD_REQUEST: { status: 400, description: 'The request itself is malformed (an undecodable URL, a body where none belongs)' },
  NOT_FOUND: { status: 404, description: 'No such route' },
  METHOD_NOT_ALLOWED: { status: 405, description: 'The path exists, but not for this method; the Allow header lists those it has' },
  REQUEST_TIMEOUT: { status: 408, description: 'The request did not arrive in time' },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body is larger than the API accepts' },
  URI_TOO_LONG: { status: 414, description: 'The URL is longer than the API accepts' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The request body has a content type the API does not read' },
  HEADERS_TOO_LARGE: { status: 431, description: 'The request headers are larger than the API accepts' },
  INTERNAL: { status: 500, description: 'An unexpected failure (logged)' },
  NOT_READY: { status: 503, description: 'The database is not migrated yet (run `tickflow migrate`)' },
  DATABASE_UNAVAILABLE: { status: 503, description: 'The database is unavailable; retry later' },
  SHUTTING_DOWN: { status: 503, description: 'The server is shutting down; retry (another instance)' },
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
    return errorBody(this.code, this.message, this.parameter);
  }
}

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; parameter?: string };
}

export function errorBody(code: ApiErrorCode, message: string, parameter?: string): ApiErrorBody {
  return { error: { code, message, ...(parameter ? { parameter } : {}) } };
}

export const errorBodySchema = {
  $id: 'ApiError',
  title: 'ApiError',
  type: 'object',
  description: 'Every error response, whatever its status',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: Object.keys(ApiErrorCodes), description: 'Stable error code' },
        message: { type: 'string', description: 'What was wrong and what to do' },
        parameter: { type: 'string', description: 'The query parameter at fault, for 400s' },
      },
    },
  },
} as const;
