// Builds the page into dist/: index.html, app.js (esbuild, one minified ESM
// bundle) and sources.sha256, the hash of the sources the bundle was built
// from (see README.md). `node build.mjs --check` builds nothing: it exits 1
// when dist/sources.sha256 does not match the sources.

import { createHash } from 'node:crypto'
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const web = dirname(fileURLToPath(import.meta.url))
const dist = join(web, 'dist')

// The files whose hash is recorded, besides everything under src/.
const TOP_FILES = ['index.html', 'package.json', 'package-lock.json', 'build.mjs']

async function walk (dir) {
  const out = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await walk(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

// sourcesHash is the reference implementation of the freshness hash: the
// paths (relative to web/, with "/") of every regular file under src/ and
// of TOP_FILES, sorted bytewise; for each, the path, one NUL byte and the
// file's bytes, all fed in that order to one SHA-256; lowercase hex.
export async function sourcesHash (root = web) {
  const files = [
    ...(await walk(join(root, 'src'))).map((p) => relative(root, p).split(sep).join('/')),
    ...TOP_FILES
  ]
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  const h = createHash('sha256')
  for (const f of files) {
    h.update(Buffer.from(f, 'utf8'))
    h.update(Buffer.from([0]))
    h.update(await readFile(join(root, f)))
  }
  return h.digest('hex')
}

async function check () {
  const want = await sourcesHash()
  let have = ''
  try {
    have = (await readFile(join(dist, 'sources.sha256'), 'utf8')).trim()
  } catch {}
  if (have !== want) {
    console.error(`web/dist is stale: dist/sources.sha256 is ${have || '(missing)'}, the sources hash to ${want}; run make web`)
    process.exit(1)
  }
  console.log(`web/dist is fresh (${want})`)
}

async function build () {
  const esbuild = await import('esbuild')
  await mkdir(dist, { recursive: true })
  const result = await esbuild.build({
    absWorkingDir: web,
    entryPoints: ['src/app.js'],
    outfile: 'dist/app.js',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120'],
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    metafile: true,
    logLevel: 'warning'
  })
  await copyFile(join(web, 'index.html'), join(dist, 'index.html'))
  const hash = await sourcesHash()
  await writeFile(join(dist, 'sources.sha256'), hash + '\n')
  const size = result.metafile.outputs['dist/app.js'].bytes
  console.log(`dist/app.js ${(size / 1024).toFixed(0)} KiB, sources ${hash}`)
}

if (process.argv.includes('--check')) await check()
else await build()
