import type {InventoryItem} from '../../lib/protocol.js'
import type {FileRow, SetAsideRow} from './table.js'

// Rebuilding a lost table from the keepers' inventories (`dfs master --recover`). Every keeper keeps
// a description (fileId, name, size, sha256, createdAt) beside each blob; these rules turn the
// descriptions of many keepers into one file per name. Pure functions: the master applies them.
//
// 1. One file id, several descriptions (a damaged or forged one): the description most keepers hold
//    wins and the others are set aside; a tie sets every description of that id aside.
// 2. One name, several file ids (a file removed and put again while a keeper that held the old one
//    was away): the newest generation (createdAt) wins; one without a creation time is older than
//    any with one; equal times go to the generation more keepers hold, then to the smaller file id.
// Nothing is deleted: what loses is set aside (its keepers keep the bytes) and reported by fsck.

export interface Sighting {
  keeperId: string
  item: InventoryItem
}

export interface RecoveredFile {
  file: FileRow
  replicas: Array<{keeperId: string}>
}

export interface Resolution {
  files: RecoveredFile[]
  setAside: SetAsideRow[]
}

interface Candidate {
  item: InventoryItem
  holders: Sighting[]
}

/** The table the sightings of every keeper describe, and what is set aside (rules 1 and 2). */
export function resolveInventories(sightings: Sighting[]): Resolution {
  const setAside: SetAsideRow[] = []
  const aside = (candidate: Candidate, reason: string) => {
    for (const {keeperId, item} of candidate.holders) setAside.push(asideRow(keeperId, item, reason))
  }

  const byId = new Map<string, Map<string, Candidate>>()
  for (const sighting of sightings) {
    const variants = byId.get(sighting.item.fileId) ?? new Map<string, Candidate>()
    byId.set(sighting.item.fileId, variants)
    const key = describes(sighting.item)
    const variant = variants.get(key)
    if (variant) {
      variant.holders.push(sighting)
      // Copies carry the master's time of the first commit, the first replica its keeper's: take the latest.
      if (createdAt(sighting.item) > createdAt(variant.item)) variant.item = sighting.item
    } else {
      variants.set(key, {item: sighting.item, holders: [sighting]})
    }
  }

  const byName = new Map<string, Candidate[]>()
  for (const [fileId, variants] of byId) {
    const ranked = [...variants.values()].sort((a, b) => b.holders.length - a.holders.length)
    const [first, second] = ranked
    if (second && second.holders.length === first!.holders.length) {
      for (const variant of ranked) aside(variant, `keepers disagree on what file id ${fileId} is, with no majority`)
      continue
    }

    for (const variant of ranked.slice(1)) aside(variant, `outvoted: ${first!.holders.length} keepers describe file id ${fileId} otherwise`)
    const named = byName.get(first!.item.name) ?? []
    byName.set(first!.item.name, [...named, first!])
  }

  const files: RecoveredFile[] = []
  for (const [name, generations] of byName) {
    const [winner, ...losers] = generations.sort(
      (a, b) => createdAt(b.item) - createdAt(a.item) || b.holders.length - a.holders.length || (a.item.fileId < b.item.fileId ? -1 : 1),
    )
    for (const loser of losers) aside(loser, olderGeneration(name, winner!.item.fileId))
    const {item} = winner!
    files.push({
      file: {fileId: item.fileId, name: item.name, size: item.size, sha256: item.sha256, createdAt: item.createdAt ?? 0},
      replicas: winner!.holders.map(({keeperId}) => ({keeperId})),
    })
  }

  return {files, setAside}
}

/**
 * Where a file a keeper reports after the table was rebuilt goes: `new` (no file of its name yet),
 * `replaces` (it is a newer generation than the recorded one, which is set aside) or `aside`.
 */
export function lateVerdict(item: InventoryItem, recorded: FileRow | undefined): 'new' | 'replaces' | 'aside' {
  if (!recorded) return 'new'
  return createdAt(item) > recorded.createdAt ? 'replaces' : 'aside'
}

export function olderGeneration(name: string, newer: string): string {
  return `an older generation of "${name}" than ${newer}`
}

export function asideRow(keeperId: string, item: InventoryItem, reason: string): SetAsideRow {
  return {fileId: item.fileId, keeperId, name: item.name, size: item.size, sha256: item.sha256, ...(item.createdAt === undefined ? {} : {createdAt: item.createdAt}), reason}
}

/** What a description says a file is (its creation time aside: copies may differ in it). */
function describes(item: InventoryItem): string {
  return JSON.stringify([item.name, item.size, item.sha256])
}

function createdAt(item: {createdAt?: number}): number {
  return item.createdAt ?? -1
}
