// How commands print for people; without @oclif/core, so that the fast runner prints the same.

/** Formats rows as a plain aligned text table, for people. */
export function formatTable(rows: Array<Record<string, string | number | boolean>>, columns: string[]): string {
  return new PagedTable(columns).format(rows)
}

/**
 * A table whose rows come a page at a time (dfs ls of 100,000 files prints as pages arrive): the
 * header with the first page, and each column as wide as its widest cell so far, so a later page
 * may widen a column, never narrow it.
 */
export class PagedTable {
  #widths: number[] | undefined

  constructor(readonly columns: string[]) {}

  /** The lines of one page, without a trailing newline; the header comes with the first. */
  format(rows: Array<Record<string, string | number | boolean>>): string {
    const header = this.#widths === undefined ? [this.columns.map((column) => column.toUpperCase())] : []
    const cells = [...header, ...rows.map((row) => this.columns.map((column) => String(row[column] ?? '')))]
    const widths = this.columns.map((_, index) => Math.max(this.#widths?.[index] ?? 0, ...cells.map((line) => line[index]!.length)))
    this.#widths = widths
    return cells.map((line) => line.map((cell, index) => cell.padEnd(widths[index]!)).join('  ').trimEnd()).join('\n')
  }
}

/** A name cut in the middle with … to fit `width` characters. */
export function shorten(name: string, width: number): string {
  const chars = [...name]
  if (chars.length <= width) return name
  const head = Math.ceil((width - 1) / 2)
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (width - 1 - head)).join('')}`
}

/**
 * A name as a table shows it: on a terminal cut in the middle past 48 characters, so that a long one
 * does not push the other columns out of view; whole anywhere else (a pipe, a file), where it is data.
 */
export function nameCell(name: string): string {
  return process.stdout.isTTY ? shorten(name, 48) : name
}

/** Bytes for people: 1.5 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }

  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

/** How long ago a moment was, for people: "12s ago", "5m ago", "3h ago", "2d ago"; "never" for none. */
export function formatAge(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never'
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (seconds < 120) return `${seconds}s ago`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`
  return `${Math.round(seconds / 86_400)}d ago`
}
