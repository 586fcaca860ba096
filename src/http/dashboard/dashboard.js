// The live dashboard: renders each snapshot that /v1/live pushes (the same object as
// GET /v1/dashboard). Tables are rebuilt per snapshot; charts are uPlot instances kept
// across snapshots and given new data. Plain ES module, no build step.
import uPlot from '/dashboard/vendor/uPlot.esm.js';

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#475569', '#65a30d', '#7c3aed', '#0d9488'];
const AXIS = { stroke: '#64748b', grid: { stroke: '#eef2f7', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } };

const number = (digits) => new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const format = {
  price: number(2),
  int: new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 }),
  rate: new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 }),
  compact: new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }),
  percent: new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  signedPercent: new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: 'exceptZero' }),
};
const hhmmss = (iso) => iso.slice(11, 19);
const plural = (n, noun) => `${format.int.format(n)} ${noun}${n === 1 ? '' : 's'}`;

/** Colours stay with their ticker or topic across snapshots. */
const colours = new Map();
const colourOf = (name) => {
  if (!colours.has(name)) colours.set(name, PALETTE[colours.size % PALETTE.length]);
  return colours.get(name);
};

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'className') node.className = value;
    else if (name === 'style') Object.assign(node.style, value); // CSSOM: the page's CSP allows no inline style attributes
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const cell = (text, className = 'num') => el('td', { className }, text);

/** Shows the table or its "empty" line. */
function fillTable(section, rows) {
  const card = document.getElementById(section);
  card.querySelector('tbody').replaceChildren(...rows);
  card.querySelector('table').hidden = rows.length === 0;
  card.querySelector('.empty').hidden = rows.length !== 0;
}

function ago(iso, now) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return iso.slice(0, 10);
}

// ---- charts ----

const charts = new Map();

/** Creates the chart at `container` or gives it new data; recreated when its series change. */
function chart(key, container, shape, options, data) {
  const existing = charts.get(key);
  if (existing && existing.shape === shape && existing.container === container) {
    existing.plot.setData(data);
  } else {
    existing?.plot.destroy();
    existing?.observer.disconnect();
    container.replaceChildren();
    const width = Math.max(200, container.clientWidth);
    const plot = new uPlot({ ...options, width, tzDate: utc, hooks: { draw: [(u) => recordXAxis(u, container)] } }, data, container);
    const observer = new ResizeObserver(() => {
      const w = Math.max(200, container.clientWidth);
      if (w !== plot.width) plot.setSize({ width: w, height: plot.height });
    });
    observer.observe(container);
    charts.set(key, { plot, observer, shape, container });
  }
  const points = data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null && y !== undefined).length, 0);
  container.dataset.points = String(points);
}

function dropChart(key) {
  const existing = charts.get(key);
  if (!existing) return;
  existing.plot.destroy();
  existing.observer.disconnect();
  charts.delete(key);
}

/**
 * What each chart's x axis shows, on its container: the range (unix seconds) and every
 * label with its centre (CSS px) and font, so a test can check the range and that no
 * two labels overlap. Read from the axis as uPlot last drew it.
 */
function recordXAxis(u, container) {
  const axis = u.axes[0];
  container.dataset.xMin = String(u.scales.x.min);
  container.dataset.xMax = String(u.scales.x.max);
  container.dataset.xFont = Array.isArray(axis.font) ? axis.font[0] : String(axis.font);
  container.dataset.xLabels = JSON.stringify((axis._splits ?? []).map((t, i) => ({ text: String(axis._values?.[i] ?? ''), x: u.valToPos(t, 'x') })));
}

// Times in UTC everywhere on the page, as in the tables.
const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC');
const two = (n) => String(n).padStart(2, '0');
/** 24-hour UTC labels; seconds only when ticks are under a minute apart. */
const timeLabel = (seconds, increment) => {
  const d = new Date(seconds * 1000);
  const hm = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
  return increment < 60 ? `${hm}:${two(d.getUTCSeconds())}` : hm;
};
// `space`: the least pixels between ticks, wide enough for "00:00:00" and a gap at 12 px.
const timeAxis = { ...AXIS, space: 84, values: (_u, splits, _axis, _space, increment) => splits.map((t) => timeLabel(t, increment)) };

/**
 * At least `span` seconds on a time axis, centred on the data: a single window is a point
 * in a sensible frame, not the middle of a two-year axis (uPlot's default for a zero range).
 */
const timeRange = (span) => (u, min, max) => {
  // uPlot widens a one-point time axis to 86,400,000 s before asking (a day counted in ms, applied to seconds).
  if (u.data[0]?.length === 1) min = max = u.data[0][0];
  if (min === null || max === null || max - min >= span) return [min, max];
  const middle = (min + max) / 2;
  return [middle - span / 2, middle + span / 2];
};
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** UTC dates ("Mar 30") for charts of days. */
const dayAxis = { ...AXIS, space: 60, values: (_u, splits) => splits.map((t) => { const d = new Date(t * 1000); return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`; }) };
const valueAxis = (formatter, size = 60) => ({ ...AXIS, size, values: (_u, values) => values.map((v) => formatter.format(v)) });

/** Price ticks with as many decimals as their spacing needs (a calm ticker's ticks are 0.05 apart). */
const priceAxis = {
  ...AXIS,
  size: 64,
  space: 22, // small charts: still two or three labelled ticks
  values: (_u, values, _axis, _space, increment) => {
    const digits = Math.min(4, Math.max(0, -Math.floor(Math.log10(increment || 1))));
    return values.map((v) => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  },
};

/** A y range at least 0.5% of the price wide, so a flat line does not look like a swing. */
const priceRange = (_u, min, max) => {
  const middle = (min + max) / 2;
  const half = Math.max((max - min) / 2, Math.abs(middle) * 0.0025) * 1.1;
  return [middle - half, middle + half];
};

// ---- panels ----

function renderStocks(stocks) {
  const rows = (stocks ?? []).map((s) => {
    const change = s.previousAverage ? s.latest.averagePrice / s.previousAverage - 1 : null;
    return el('tr', { 'data-ticker': s.ticker },
      el('td', { className: 'ticker' }, el('i', { style: { background: colourOf(s.ticker) } }), s.ticker),
      cell(format.price.format(s.latest.averagePrice), 'num average'),
      cell(change === null ? '–' : format.signedPercent.format(change), `num ${change > 0 ? 'up' : change < 0 ? 'down' : ''}`),
      cell(`${format.int.format(s.latest.minPrice)} – ${format.int.format(s.latest.maxPrice)}`),
      cell(format.int.format(s.latest.sampleCount)),
      // The start only: every window is 30 s, and the range would not fit a 1400 px screen.
      el('td', { className: 'num window', title: `${s.latest.windowStart} – ${s.latest.windowEnd}` }, hhmmss(s.latest.windowStart)),
    );
  });
  fillTable('stocks', rows);

  const grid = document.getElementById('average-charts');
  const wanted = new Set((stocks ?? []).map((s) => `avg:${s.ticker}`));
  for (const figure of [...grid.children]) {
    if (!wanted.has(figure.dataset.key)) {
      dropChart(figure.dataset.key);
      figure.remove();
    }
  }
  for (const s of stocks ?? []) {
    const key = `avg:${s.ticker}`;
    let figure = grid.querySelector(`figure[data-key="${CSS.escape(key)}"]`);
    if (!figure) {
      figure = el('figure', { 'data-key': key }, el('figcaption'), el('div', { className: 'chart', 'data-chart': key, 'data-points': '0' }));
      grid.append(figure);
    }
    figure.querySelector('figcaption').replaceChildren(el('b', {}, s.ticker), el('span', {}, `${format.price.format(s.latest.averagePrice)} · ${plural(s.history.t.length, 'window')}`));
    const colour = colourOf(s.ticker);
    chart(key, figure.querySelector('.chart'), 'avg', {
      height: 150,
      legend: { show: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true, range: timeRange(10 * 30) }, y: { range: priceRange } },
      axes: [timeAxis, priceAxis],
      series: [{}, { label: s.ticker, stroke: colour, width: 2, fill: `${colour}1a`, points: { show: s.history.t.length <= 40, size: 4 } }],
    }, [s.history.t, s.history.average]);
  }
  document.getElementById('averages').querySelector('.empty').hidden = (stocks ?? []).length > 0;
}

function renderIndicators(indicators, now) {
  const list = indicators ?? [];
  if (list.length > 0) document.getElementById('indicator-window').textContent = String(list[0].window);
  fillTable('indicators', list.map((i) => el('tr', { 'data-symbol': i.symbol },
    el('td', { className: 'ticker' }, i.symbol),
    cell(i.price === null ? '–' : format.price.format(i.price), 'num price'),
    cell(i.ema === null ? '–' : format.price.format(i.ema), 'num ema'),
    cell(i.volatility === null ? '–' : format.percent.format(i.volatility), 'num volatility'),
    cell(`${i.points}/${i.window}`),
    cell(format.int.format(i.seen)),
    cell(ago(i.updatedAt, now)),
  )));
}

function renderUniqueUsers(uniqueUsers) {
  const minutes = uniqueUsers?.minutes ?? [];
  document.getElementById('users-topic').textContent = uniqueUsers ? `topic ${uniqueUsers.topic}, event time (UTC)` : '';
  const last = minutes.at(-1);
  document.getElementById('users-latest').textContent = last ? format.int.format(last.uniqueUsers) : '–';
  document.getElementById('users-latest-minute').textContent = last ? `users in ${last.minute.replace('T', ' ').replace(/:00(\.000)?Z$/, '')} · ${format.int.format(last.frames)} frames` : '';
  const container = document.getElementById('users-chart');
  container.hidden = minutes.length === 0;
  document.getElementById('users').querySelector('.empty').hidden = minutes.length > 0;
  if (minutes.length === 0) return;
  chart('users', container, 'bars', {
    height: 200,
    legend: { show: false },
    scales: { x: { time: true, range: timeRange(10 * 60) }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } }, // bars start at zero
    axes: [timeAxis, valueAxis(format.compact, 50)],
    series: [{}, { label: 'unique users', stroke: '#2563eb', fill: '#2563eb99', width: 1, paths: uPlot.paths.bars({ size: [0.8, 24] }), points: { show: false } }],
  }, [minutes.map((m) => m.start), minutes.map((m) => m.uniqueUsers)]);
}

function renderThroughput(throughput) {
  const topics = throughput?.topics ?? [];
  const total = topics.reduce((n, t) => n + (t.recordsPerSecond ?? 0), 0);
  document.getElementById('throughput-total').textContent = topics.some((t) => t.recordsPerSecond !== null) ? format.rate.format(total) : '–';
  fillTable('topics', topics.map((t) => el('tr', { 'data-topic': t.topic },
    el('td', { className: 'ticker wrap' }, el('i', { style: { background: colourOf(t.topic) } }), t.topic),
    cell(format.int.format(t.messages)),
    cell(t.recordsPerSecond === null ? '–' : format.rate.format(t.recordsPerSecond), 'num rate'),
  )));
  const container = document.getElementById('throughput-chart');
  const series = throughput?.history.series ?? [];
  container.hidden = series.length === 0;
  document.getElementById('throughput').querySelector('.empty').hidden = series.length > 0;
  if (series.length === 0) return;
  chart('throughput', container, series.map((s) => s.topic).join('\u0000'), {
    height: 200,
    legend: { live: false },
    // At least the last minute on the x axis, so a young history is not drawn in half-seconds.
    scales: { x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [timeAxis, valueAxis(format.compact, 50)],
    series: [{}, ...series.map((s) => ({ label: s.topic, stroke: colourOf(s.topic), width: 2, points: { show: false }, spanGaps: false }))],
  }, [throughput.history.t, ...series.map((s) => s.recordsPerSecond)]);
}

function renderLag(lag) {
  document.getElementById('lag-at').textContent = lag ? `end offset − position, as of ${hhmmss(lag.at)} UTC` : '';
  fillTable('lag', (lag?.consumers ?? []).map((c) => el('tr', { 'data-consumer': c.name, 'data-topic': c.topic },
    // Consumer names are the user's and can be long: they wrap rather than push the table out of its card.
    el('td', { className: 'wrap' }, c.name),
    el('td', { className: 'muted spaces' }, c.kind === 'stored' ? 'offsets in PostgreSQL' : 'Kafka group'),
    el('td', {}, c.topic),
    cell(String(c.partitions)),
    cell(format.int.format(c.consumed)),
    // A position past the log end (see the problems below) has no meaningful lag.
    c.lag < 0 ? cell('past end', 'num lag down') : cell(format.int.format(c.lag), c.lag > 0 ? 'num lag lagging' : 'num lag'),
  )));
  document.getElementById('problems').replaceChildren(...(lag?.problems ?? []).map((p) => el('li', {}, `${p.where}: ${p.message}`)));
}

function renderNotes(notes) {
  document.getElementById('notes-card').hidden = notes.length === 0;
  document.getElementById('notes').replaceChildren(...notes.map((n) => el('li', {}, n)));
}

function render(snapshot) {
  const now = Date.parse(snapshot.at);
  document.getElementById('source').textContent = snapshot.log ? snapshot.log.description : 'no log';
  renderStocks(snapshot.stocks);
  renderIndicators(snapshot.indicators, now);
  renderUniqueUsers(snapshot.uniqueUsers);
  renderThroughput(snapshot.throughput);
  renderLag(snapshot.lag);
  renderNotes(snapshot.notes);
  setStatus('live', `live · ${hhmmss(snapshot.at)} UTC`);
  document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
}

function setStatus(state, text) {
  const status = document.getElementById('status');
  status.dataset.state = state;
  status.querySelector('b').textContent = text;
}

// ---- unique users over time: GET /v1/unique-users, fetched once a minute ----

const USER_RANGES = [
  { key: 'hours', granularity: 'hour', count: 24, step: 3600, axis: timeAxis },
  { key: 'days', granularity: 'day', count: 30, step: 86400, axis: dayAxis },
];

/** The range of whole UTC hours or days ending with the current one. */
async function fetchUserRange(range) {
  const to = (Math.floor(Date.now() / 1000 / range.step) + 1) * range.step;
  const from = to - range.count * range.step;
  const response = await fetch(`/v1/unique-users?from=${from * 1000}&to=${to * 1000}&granularity=${range.granularity}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
  return body;
}

const estimate = (counted) => (counted.approximate ? ` (±${format.rate.format(counted.standardError * 100)}%)` : '');

function renderUserRanges(answers) {
  const card = document.getElementById('user-ranges');
  const failed = answers.find((a) => a.error);
  const empty = failed !== undefined || answers.every((a) => a.body.total.minutes === 0);
  card.querySelector('.small-multiples').hidden = empty;
  const note = card.querySelector('.empty');
  note.hidden = !empty;
  note.textContent = failed ? `Unique users over time: ${failed.error.message}` : 'No minutes of unique users stored for the last 30 days.';
  if (empty) {
    for (const range of USER_RANGES) dropChart(`users-${range.key}`);
    return;
  }
  for (const [i, range] of USER_RANGES.entries()) {
    const { buckets, total } = answers[i].body;
    document.getElementById(`users-${range.key}-total`).textContent = `${format.int.format(total.uniqueUsers)} distinct users${estimate(total)}`;
    const container = document.getElementById(`users-${range.key}-chart`);
    chart(`users-${range.key}`, container, 'bars', {
      height: 180,
      legend: { show: false },
      // Half a bucket of room on each side, so the first and last bars are whole.
      scales: { x: { time: true, range: (_u, min, max) => [min - range.step / 2, max + range.step / 2] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [range.axis, valueAxis(format.compact, 50)],
      series: [{}, { label: 'distinct users', stroke: '#0891b2', fill: '#0891b299', width: 1, paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
    }, [buckets.map((b) => b.start), buckets.map((b) => (b.minutes === 0 ? null : b.uniqueUsers))]);
  }
}

async function refreshUserRanges() {
  const answers = await Promise.all(USER_RANGES.map((range) => fetchUserRange(range).then((body) => ({ body }), (error) => ({ error }))));
  renderUserRanges(answers);
  document.body.dataset.userRanges = String(Number(document.body.dataset.userRanges ?? 0) + 1);
}

void refreshUserRanges();
setInterval(() => void refreshUserRanges(), 60_000);

// ---- the stream ----

const source = new EventSource('/v1/live');
source.onmessage = (event) => {
  try {
    render(JSON.parse(event.data));
  } catch (error) {
    console.error('dashboard: cannot render a snapshot', error);
  }
};
source.onerror = () => setStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting', 'reconnecting…');
