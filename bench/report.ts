// Collects the measurements of every run and prints them: a table for people, JSON for scripts.
// Each row can name a baseline row (its ratio is median / baseline median) and a target, which is
// marked met or missed; a missed target is reported, never turned into a failing exit code.

import {summarize} from './stats.js'

export type Unit = 's' | 'ms' | 'files/s' | 'files' | 'MB' | '×' | 'B'

export interface Target {
  /** At most this many times the baseline's median. */
  ratioMax?: number
  /** The figure (see `on`) at most this. */
  max?: number
  /** The figure (see `on`) at least this. */
  min?: number
  /** Which figure is held to max/min: the median (default) or the worst run. */
  on?: 'median' | 'max' | 'min'
  /** Replaces the generated description. */
  text?: string
}

export interface RowDefinition {
  id: string
  section: string
  label: string
  unit: Unit
  /** How the baseline is named in the ratio column ("bare PUT"); only for rows others compare to. */
  short?: string
  baseline?: string
  /** More rows to show a ratio to, without a target. */
  extraBaselines?: string[]
  target?: Target
}

export interface Row extends RowDefinition {
  samples: number[]
  median: number
  min: number
  max: number
  ratio?: number
  extraRatios?: Array<{baseline: string; ratio: number}>
  targetText?: string
  status?: 'met' | 'missed' | 'no data' | 'not checked'
}

export class Recorder {
  readonly #definitions = new Map<string, RowDefinition>()
  readonly #samples = new Map<string, number[]>()
  /** Off in --short: targets are shown but not checked. */
  evaluateTargets = true

  define(definition: RowDefinition): void {
    this.#definitions.set(definition.id, definition)
    this.#samples.set(definition.id, [])
  }

  /** Changes a defined row, e.g. a target computed from measurements. */
  refine(id: string, change: Partial<RowDefinition>): void {
    const definition = this.#definitions.get(id)
    if (!definition) throw new Error(`bench bug: row ${id} was never defined`)
    this.#definitions.set(id, {...definition, ...change, id})
  }

  add(id: string, value: number | undefined): void {
    if (!this.#definitions.has(id)) throw new Error(`bench bug: row ${id} was never defined`)
    if (value !== undefined && Number.isFinite(value)) this.#samples.get(id)!.push(value)
  }

  samples(id: string): number[] {
    return this.#samples.get(id) ?? []
  }

  rows(): Row[] {
    const summaries = new Map([...this.#definitions.keys()].map((id) => [id, summarize(this.#samples.get(id)!)]))
    return [...this.#definitions.values()].map((definition) => {
      const samples = this.#samples.get(definition.id)!
      const summary = summaries.get(definition.id)!
      const baseline = definition.baseline ? this.#definitions.get(definition.baseline) : undefined
      const baselineMedian = definition.baseline ? summaries.get(definition.baseline)?.median : undefined
      const ratio = baselineMedian !== undefined && samples.length > 0 ? summary.median / baselineMedian : undefined
      const row: Row = {...definition, samples, median: summary.median, min: summary.min, max: summary.max, ratio}
      const extra = (definition.extraBaselines ?? []).flatMap((id) => {
        const other = summaries.get(id)
        const name = this.#definitions.get(id)
        return other && name && other.count > 0 && samples.length > 0 ? [{baseline: name.short ?? name.label, ratio: summary.median / other.median}] : []
      })
      if (extra.length > 0) row.extraRatios = extra
      if (definition.target) {
        row.targetText = describeTarget(definition.target, definition.unit, baseline?.short ?? baseline?.label)
        if (samples.length === 0) row.status = 'no data'
        else if (!this.evaluateTargets) row.status = 'not checked'
        else row.status = meets(definition.target, summary, ratio) ? 'met' : 'missed'
      }

      return row
    })
  }
}

function describeTarget(target: Target, unit: Unit, baseline: string | undefined): string {
  if (target.text) return target.text
  const parts: string[] = []
  if (target.ratioMax !== undefined) parts.push(`≤ ${target.ratioMax}× ${baseline ?? 'baseline'}`)
  const on = target.on && target.on !== 'median' ? ` (${target.on === 'max' ? 'worst' : 'best'} run)` : ''
  if (target.max !== undefined) parts.push(`≤ ${formatValue(target.max, unit)}${on}`)
  if (target.min !== undefined) parts.push(`≥ ${formatValue(target.min, unit)}${on}`)
  return parts.join(', ')
}

function meets(target: Target, summary: {median: number; min: number; max: number}, ratio: number | undefined): boolean {
  const figure = summary[target.on ?? 'median']
  if (target.ratioMax !== undefined && !(ratio !== undefined && ratio <= target.ratioMax)) return false
  if (target.max !== undefined && !(figure <= target.max)) return false
  if (target.min !== undefined && !(figure >= target.min)) return false
  return true
}

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return '-'
  switch (unit) {
    case 's':
      return `${value < 10 ? value.toFixed(3) : value.toFixed(2)} s`
    case 'ms':
      return `${value.toFixed(0)} ms`
    case 'files/s':
      // One decimal below 100: a few files a second (one process per put) would otherwise round to a bare integer.
      return `${value < 100 ? value.toFixed(1) : value.toFixed(0)} files/s`
    case 'files':
      return `${value.toFixed(0)} files`
    case 'MB':
      return `${value.toFixed(0)} MB`
    case '×':
      return `${value.toFixed(2)}×`
    case 'B':
      return value >= 10_000 ? `${(value / 1000).toFixed(0)} kB` : `${value.toFixed(0)} B`
  }
}

/** The table for people, one block per section. */
export function formatReport(rows: Row[], runs: number): string {
  const header = ['scenario', 'median', 'min', 'max', 'ratio to baseline', 'target', 'status']
  const lines: string[][] = []
  const sections: Array<{title: string; start: number}> = []
  for (const row of rows) {
    if (sections.at(-1)?.title !== row.section) sections.push({title: row.section, start: lines.length})
    const baseline = row.baseline ? rows.find((other) => other.id === row.baseline) : undefined
    lines.push([
      `  ${row.label}`,
      formatValue(row.median, row.unit),
      row.samples.length > 1 ? formatValue(row.min, row.unit) : '',
      row.samples.length > 1 ? formatValue(row.max, row.unit) : '',
      [
        ...(row.ratio === undefined ? [] : [`${row.ratio.toFixed(2)}× ${baseline?.short ?? baseline?.label ?? ''}`.trim()]),
        ...(row.extraRatios ?? []).map((extra) => `${extra.ratio.toFixed(2)}× ${extra.baseline}`),
      ].join(', '),
      row.targetText ?? '',
      row.status === undefined ? '' : row.status === 'missed' ? 'MISSED' : row.status,
    ])
  }

  const widths = header.map((title, index) => Math.max(title.length, ...lines.map((line) => line[index]!.length)))
  const pad = (cells: string[]) =>
    cells
      .map((cell, index) => (index >= 1 && index <= 3 ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)))
      .join('  ')
      .trimEnd()
  const out: string[] = [pad(header), widths.map((width) => '-'.repeat(width)).join('  ')]
  for (const [index, section] of sections.entries()) {
    const end = sections[index + 1]?.start ?? lines.length
    out.push(section.title)
    for (const line of lines.slice(section.start, end)) out.push(pad(line))
  }

  const met = rows.filter((row) => row.status === 'met').length
  const missed = rows.filter((row) => row.status === 'missed').length
  out.push('', `targets: ${met} met, ${missed} missed (median of ${runs} run${runs === 1 ? '' : 's'} unless stated; targets never fail the bench)`)
  return out.join('\n')
}
