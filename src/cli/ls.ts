import type {CommandIo} from './command-io.js'
import {type CommandSpec, type Parsed, clientSpecs, jsonSpec} from './flag-spec.js'
import {PagedTable, formatAge, formatBytes, nameCell} from './human-format.js'

export const lsSpec = {
  flags: {...clientSpecs, json: jsonSpec},
  args: {pattern: {description: 'a prefix, or a glob (*, ?, **) of names', required: false, ignoreStdin: true}},
  strict: true,
} as const satisfies CommandSpec

export async function runLs(io: CommandIo, {args, flags}: Parsed<typeof lsSpec>): Promise<void> {
  const {filePages} = await import('../roles/client/admin.js')
  // Printed as the pages arrive: the first line comes at once, and no listing is held whole.
  const table = new PagedTable(['name', 'size', 'replicas', 'created'])
  let printed = 0
  for await (const files of filePages(await io.master(flags), args.pattern)) {
    if (files.length === 0) continue
    // The --json array is JSON.stringify(files, null, 2), written a page at a time.
    if (flags.json) process.stdout.write(files.map((file) => `${printed++ === 0 ? '[' : ','}\n  ${JSON.stringify(file, null, 2).replaceAll('\n', '\n  ')}`).join(''))
    else {
      printed += files.length
      io.log(table.format(files.map((file) => ({name: nameCell(file.name), size: formatBytes(file.size), replicas: `${file.replicas}/${file.target}`, created: formatAge(file.createdAt)}))))
    }
  }

  if (flags.json) io.log(printed === 0 ? '[]' : '\n]')
  else if (printed === 0) io.log(args.pattern === undefined ? 'no files' : `no files match ${args.pattern}`)
}
