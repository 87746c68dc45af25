// A scrape of GET /metrics read the way Prometheus reads it (text format 0.0.4), small enough
// for tests: prom-client writes the format but has no parser.

import assert from 'node:assert/strict'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a scrape; comment lines (# HELP, # TYPE) are left out. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(match, `not a sample line of the text format: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1')
    }

    samples.push({name: match[1]!, labels, value: Number(match[3])})
  }

  return samples
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
    .reduce((sum, sample) => sum + sample.value, 0)
}

/** Whether a scrape has a sample named `name` at all (a metric that is declared shows even at 0). */
export function has(samples: Sample[], name: string): boolean {
  return samples.some((sample) => sample.name === name)
}
