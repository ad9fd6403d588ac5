// Writes src/generated/crd.js, the CRD text that `describe` returns, from crd.yaml.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const crd = readFileSync(join(root, 'crd.yaml'), 'utf8');
mkdirSync(join(root, 'src', 'generated'), { recursive: true });
writeFileSync(join(root, 'src', 'generated', 'crd.js'), `// Generated from crd.yaml; do not edit.\nexport const CRD = ${JSON.stringify(crd)};\n`);
