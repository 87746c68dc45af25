import {DEFAULTS} from '../lib/config.js'
import {TransferBars} from '../lib/transfer-progress.js'
import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs, flag, jsonSpec, quietSpec, sizeSpec} from './flag-spec.js'
import {formatBytes} from './human-format.js'

const MIN_RANGE_SIZE = 64 * 1024

export const getSpec = {
  flags: {
    ...clientSpecs,
    output: flag.string({char: 'o', description: 'file to write, a directory for several names (each by its base name), or - for stdout'}),
    recursive: flag.boolean({char: 'r', description: 'NAME is a folder: download every file under it into -o DIR (by default its last name), recreating its tree', default: false}),
    'no-clobber': flag.boolean({char: 'n', description: 'refuse to overwrite a local file that exists', default: false}),
    sources: flag.integer({description: 'read from at most this many replicas, each to the end (by default all start, and a client whose CPU is the limit goes on with the fastest alone)', min: 1}),
    'range-size': sizeSpec('bytes per range request (at least 64KiB)', DEFAULTS.rangeSize, '4MiB'),
    json: jsonSpec,
    quiet: quietSpec,
  },
  args: {name: {description: 'names of stored files', required: true}},
  strict: false,
} as const satisfies CommandSpec

export async function runGet(io: CommandIo, {argv: names, flags}: Parsed<typeof getSpec>): Promise<void> {
  if ((names.length > 1 || flags.recursive) && flags.output === '-') io.fail('-o - takes one name', 2)
  if (flags.recursive && names.length > 1) io.fail('--recursive takes one folder', 2)
  // One request per range: tiny ranges make a download crawl (3.4 MiB in 1-byte ranges took 9 minutes).
  if (flags['range-size'] < MIN_RANGE_SIZE) io.fail(`--range-size must be at least 64KiB, not ${flags['range-size']} bytes`, 2)
  const master = await io.master(flags)
  const {getFiles, getFolder} = await import('../roles/client/get.js')
  const bars = await TransferBars.open(names.length, flags.quiet || flags.json)
  const options = {output: flags.output, sources: flags.sources, rangeSize: flags['range-size'], noClobber: flags['no-clobber'], onProgress: bars?.update}
  const outcomes = await (flags.recursive ? getFolder(master, names[0]!, options) : getFiles(master, names, options)).finally(() => bars?.stop())
  io.reportEach(outcomes, {
    json: flags.json,
    subject: (index) => ({name: outcomes[index]!.name}),
    entry: (result) => result,
    line: (result) => {
      // With -o - stdout carries the file's bytes: nothing else goes there.
      if (flags.output === '-') return undefined
      const used = result.sources.filter((source) => source.bytes > 0).length
      return `got ${result.name} (${formatBytes(result.size)}) into ${result.path} from ${used} replica${used === 1 ? '' : 's'}`
    },
    what: 'downloads',
  })
}
