/** The JSON schema of the dashboard snapshot (live-snapshot.ts), for the OpenAPI document and serialisation. */

const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: 'null' }] });
const numberOrNull = { type: ['number', 'null'] } as const;

const tickerSchema = {
  type: 'object',
  required: ['ticker', 'latest', 'previousAverage', 'history'],
  properties: {
    ticker: { type: 'string' },
    latest: {
      type: 'object',
      required: ['windowStart', 'windowEnd', 'averagePrice', 'sampleCount', 'minPrice', 'maxPrice'],
      properties: {
        windowStart: { type: 'string', format: 'date-time' },
        windowEnd: { type: 'string', format: 'date-time' },
        averagePrice: { type: 'number' },
        sampleCount: { type: 'integer' },
        minPrice: { type: 'number' },
        maxPrice: { type: 'number' },
      },
    },
    previousAverage: numberOrNull,
    history: {
      type: 'object',
      description: 'Oldest first: window starts (unix seconds) and their averages',
      required: ['t', 'average'],
      properties: { t: { type: 'array', items: { type: 'number' } }, average: { type: 'array', items: { type: 'number' } } },
    },
  },
} as const;

const indicatorSchema = {
  type: 'object',
  required: ['symbol', 'price', 'ema', 'volatility', 'points', 'window', 'seen', 'consumer', 'topic', 'updatedAt'],
  properties: {
    symbol: { type: 'string' },
    price: { ...numberOrNull, description: 'The last price the indicators saw' },
    ema: numberOrNull,
    volatility: { ...numberOrNull, description: 'Sample standard deviation of log returns over the window; null below 3 prices' },
    points: { type: 'integer', description: 'Prices in the window' },
    window: { type: 'integer' },
    seen: { type: 'integer', description: 'Prices seen in all' },
    consumer: { type: 'string', description: 'Consumer group keeping the state' },
    topic: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

const uniqueUsersSchema = {
  type: 'object',
  required: ['topic', 'minutes', 'skipped'],
  properties: {
    topic: { type: 'string' },
    minutes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['minute', 'start', 'uniqueUsers', 'frames', 'late'],
        properties: {
          minute: { type: 'string' },
          start: { type: 'integer', description: 'Unix seconds' },
          uniqueUsers: { type: 'number' },
          frames: { type: 'number' },
          late: { type: 'number' },
        },
      },
    },
    skipped: { type: 'integer', description: 'Records of the topic that are not minute records' },
  },
} as const;

const throughputSchema = {
  type: 'object',
  required: ['topics', 'history'],
  properties: {
    topics: {
      type: 'array',
      items: {
        type: 'object',
        required: ['topic', 'messages', 'written', 'recordsPerSecond'],
        properties: {
          topic: { type: 'string' },
          messages: { type: 'number', description: 'Records the topic holds' },
          written: { type: 'number', description: 'Sum of the end offsets' },
          recordsPerSecond: numberOrNull,
        },
      },
    },
    history: {
      type: 'object',
      required: ['t', 'series'],
      properties: {
        t: { type: 'array', items: { type: 'number' }, description: 'Sample times, unix seconds' },
        series: {
          type: 'array',
          items: {
            type: 'object',
            required: ['topic', 'recordsPerSecond'],
            properties: { topic: { type: 'string' }, recordsPerSecond: { type: 'array', items: numberOrNull } },
          },
        },
      },
    },
  },
} as const;

const problemSchema = {
  type: 'object',
  required: ['where', 'message'],
  properties: { where: { type: 'string' }, message: { type: 'string' } },
} as const;

const lagSchema = {
  type: 'object',
  required: ['at', 'consumers', 'problems'],
  properties: {
    at: { type: 'string', format: 'date-time' },
    consumers: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kind', 'name', 'topic', 'lag', 'consumed', 'partitions'],
        properties: {
          kind: { type: 'string', enum: ['group', 'stored'], description: 'A Kafka consumer group, or offsets a sink keeps in PostgreSQL' },
          name: { type: 'string' },
          topic: { type: 'string' },
          lag: { type: 'number' },
          consumed: { type: 'number' },
          partitions: { type: 'integer' },
        },
      },
    },
    problems: { type: 'array', items: problemSchema },
  },
} as const;

export const dashboardSnapshotSchema = {
  type: 'object',
  required: ['at', 'log', 'stocks', 'indicators', 'uniqueUsers', 'throughput', 'lag', 'notes'],
  properties: {
    at: { type: 'string', format: 'date-time' },
    log: nullable({
      type: 'object',
      required: ['kind', 'description'],
      properties: { kind: { type: 'string', enum: ['kafka', 'memory'] }, description: { type: 'string' } },
    }),
    stocks: nullable({ type: 'array', items: tickerSchema }),
    indicators: nullable({ type: 'array', items: indicatorSchema }),
    uniqueUsers: nullable(uniqueUsersSchema),
    throughput: nullable(throughputSchema),
    lag: nullable(lagSchema),
    notes: { type: 'array', items: { type: 'string' }, description: 'Why a section is empty or null' },
  },
} as const;
