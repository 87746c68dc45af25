import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs} from './flag-spec.js'

export const catSpec = {
  flags: clientSpecs,
  args: {name: {description: 'name of a stored file', required: true}},
  strict: true,
} as const satisfies CommandSpec

export async function runCat(io: CommandIo, {args, flags}: Parsed<typeof catSpec>): Promise<void> {
  const {getFiles} = await import('../roles/client/get.js')
  const outcomes = await getFiles(await io.master(flags), [args.name], {output: '-'})
  io.reportEach(outcomes, {json: false, subject: () => ({name: args.name}), entry: (result) => result, line: () => undefined, what: 'downloads'})
}
