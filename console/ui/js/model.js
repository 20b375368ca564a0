// One service's model as a person reads it: per executable, what it starts, writes,
// reads, listens on and talks to, with the generalized parts marked.
import { api, canWrite } from './core.js';
import { h, time, num, section, facts, table } from './dom.js';
import { modelState, timeLeft, relearnButton, containerImageOf } from './host.js';

// The model's kinds in reading order, each with its heading.
const KINDS = [
  ['program', 'Programs it starts'],
  ['write', 'Files it writes'],
  ['read', 'Files it reads'],
  ['sensitive_read', 'Sensitive files it reads'],
  ['listen', 'Ports it listens on'],
  ['connect', 'Peers it connects to'],
  ['accept', 'Clients it accepts from'],
];

// What the learner generalizes (docs/learning.md), with what each mark means.
const GENERALIZED = [
  [/<num>/y, 'a number: any run of digits'],
  [/<rand>/y, 'a random-looking name (mktemp, UUID, session id)'],
  [/\/\*\*(?=\/|$)/y, 'any number of directories'],
  [/\/\*$/y, 'anything below this directory (folded: its children kept changing, and their names had no common shape or were folded before shapes were kept)'],
  [/\*/y, 'any run of characters within one name (folded: names of this shape kept changing)'],
  [/\?/y, 'any one character'],
  [/ephemeral/y, 'a port in the kernel\'s ephemeral range'],
  [/\/\d{1,3}(?=:|$|\])/y, 'an address range: every address of this network'],
  [/\d+-\d+(?=$)/y, 'a range of ports'],
];

// The pattern as text nodes with each generalized part in a <mark class="gen">.
export function patternNodes(pattern, kind) {
  const out = [];
  const network = kind === 'listen' || kind === 'connect' || kind === 'accept';
  let plain = '';
  for (let i = 0; i < pattern.length;) {
    let hit = null;
    for (const [re, meaning] of GENERALIZED) {
      // Address ranges and port ranges are network notation; in a path they are names.
      if (!network && (meaning.startsWith('an address') || meaning.startsWith('a range') || meaning.startsWith('a port'))) continue;
      re.lastIndex = i;
      const m = re.exec(pattern);
      if (m) {
        hit = [m[0], meaning];
        break;
      }
    }
    if (!hit) {
      plain += pattern[i++];
      continue;
    }
    if (plain) out.push(plain);
    plain = '';
    out.push(h('mark', { class: 'gen', title: hit[1] }, hit[0]));
    i += hit[0].length;
  }
  if (plain) out.push(plain);
  return h('span', { class: 'pattern' }, out);
}

function legend() {
  return h('div', { class: 'legend' }, 'Generalized parts are marked:',
    ['<num>', '<rand>', 'dir/*', '*', '10.0.0.0/24', 'ephemeral'].map((t) => h('span', null, h('mark', { class: 'gen' }, t))),
    h('span', null, '(hover one to read what it matches)'));
}

function kindBlock(kind, title, entries) {
  return h('div', { class: 'kind-block', 'data-kind': kind },
    h('h4', null, `${title} (${entries.length})`),
    table(
      [
        { title: 'Pattern', class: 'wrap', cell: (e) => patternNodes(e.pattern, kind) },
        { title: 'Seen', class: 'num', cell: (e) => num(e.count) },
        { title: 'First seen', class: 'nowrap opt', cell: (e) => time(e.first_seen) },
        { title: 'Last seen', class: 'nowrap', cell: (e) => time(e.last_seen, { relOnly: true }) },
      ],
      entries,
      { class: 'grid entries' },
    ));
}

function exeSection(sec) {
  const byKind = new Map();
  for (const e of sec.entries || []) {
    if (!byKind.has(e.kind)) byKind.set(e.kind, []);
    byKind.get(e.kind).push(e);
  }
  const known = new Set(KINDS.map(([k]) => k));
  const blocks = KINDS.filter(([k]) => byKind.has(k)).map(([k, title]) => kindBlock(k, title, byKind.get(k)));
  // A kind this page does not know yet is still shown, under its own name.
  for (const [k, list] of byKind) if (!known.has(k)) blocks.push(kindBlock(k, k, list));
  return h('div', { class: 'exe' }, h('h3', null, sec.exe), blocks.length ? blocks : h('p', { class: 'empty' }, 'Nothing learned for this executable.'));
}

export async function render(view, [id]) {
  const m = await api('GET', `/api/v1/models/${encodeURIComponent(id)}`, { signal: view.signal });
  const sections = m.sections || [];
  // Every container of one image on the host shares this model; its audits name each container.
  const image = containerImageOf(m.service);
  const imageFact = image
    ? ['Container image', [h('span', { class: 'pattern' }, image), '  ',
      h('a', { href: '#/audits?' + new URLSearchParams({ host: m.host, image }) }, 'its audits')]]
    : m.service.startsWith('container:') ? ['Container image', h('span', { class: 'muted' }, 'not known: named by its leader\'s executable')] : null;
  view.root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/fleet' }, 'Fleet'), ' / ', h('a', { href: '#/hosts/' + encodeURIComponent(m.host) }, m.host), ' / model'),
    h('div', { class: 'page-head' }, h('h1', null, m.service), modelState(m), h('span', { class: 'spacer' }), canWrite() ? relearnButton(m) : null),
    section('State',
      facts([
        ['Host', h('a', { href: '#/hosts/' + encodeURIComponent(m.host) }, m.host)],
        imageFact,
        ['State', modelState(m)],
        m.state === 'learning' ? ['Time left to learn', timeLeft(m)] : ['Active since', time(m.active_since)],
        ['Learning since', time(m.learning_since)],
        ['Entries', num(m.entries)],
        ['Events lost while learning', num(m.learn_drops)],
        m.note ? ['Why promotion is held back', h('span', { class: 'note' }, m.note)] : null,
        m.relearn_pending ? ['Relearn', 'queued; the defender has not carried it out yet'] : null,
        ['Updated', time(m.updated_at, { rel: true })],
      ]),
      m.truncated ? h('p', { class: 'note' }, 'This model has more than 100,000 entries; only the first 100,000 are shown.') : null),
    section('What it does', legend(), sections.length ? sections.map(exeSection) : h('p', { class: 'empty' }, 'Nothing learned yet.')),
  );
}
