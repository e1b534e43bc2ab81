/**
 * @module The Prometheus text exposition format (version 0.0.4): metric families with HELP and
 * TYPE lines, then one sample per label set. Pure: values in, text out.
 * Rule: label values are escaped (backslash, double quote, newline) and names are checked, so a
 * value taken from the world can never break the format.
 */

export type MetricType = 'counter' | 'gauge';

export interface Sample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  /** Counters end in _total (OpenMetrics); the name matches [a-zA-Z_:][a-zA-Z0-9_:]*. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** The exposition text of `families`, in the order given; throws on an invalid metric or label name. */
export function formatPrometheus(families: readonly MetricFamily[]): string {
  let text = '';
  for (const family of families) {
    if (!NAME.test(family.name)) throw new Error(`invalid metric name ${JSON.stringify(family.name)}`);
    text += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels ?? {});
      for (const [key] of labels) if (!LABEL.test(key) || key.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(key)}`);
      const set = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      text += `${family.name}${set} ${formatNumber(sample.value)}\n`;
    }
  }
  return text;
}

