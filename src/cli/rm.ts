import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs, flag, jsonSpec} from './flag-spec.js'

export const rmSpec = {
  flags: {
    ...clientSpecs,
    recursive: flag.boolean({char: 'r', description: 'delete every file under each named folder', default: false}),
    json: jsonSpec,
  },
  args: {name: {description: 'names of stored files (folders, with --recursive)', required: true}},
  strict: false,
} as const satisfies CommandSpec

export async function runRm(io: CommandIo, {argv: names, flags}: Parsed<typeof rmSpec>): Promise<void> {
  const {removeFiles} = await import('../roles/client/admin.js')
  const outcomes = await removeFiles(await io.master(flags), names, {recursive: flags.recursive})
  io.reportEach(outcomes, {json: flags.json, subject: (index) => ({name: outcomes[index]!.name}), entry: (result) => result, line: (result) => `removed ${result.name}`, what: 'removals'})
}
