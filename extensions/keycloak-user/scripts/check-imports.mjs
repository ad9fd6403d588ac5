// Fails unless the component imports only the operator's WIT interfaces:
// no WASI at all (the -d flags of the build turn StarlingMonkey's off).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const file = process.argv[2];
const allowed = (process.argv[3] || 'log,keycloak,secrets,types').split(',').map((i) => `keycloak-operator:reconciler/${i}@0.1.0`);
const wit = execFileSync(join(root, 'node_modules', '.bin', 'jco'), ['wit', file], { encoding: 'utf8' });
const imports = [...wit.matchAll(/^\s*import ([^;]+);/gm)].map((m) => m[1].trim());
const exports = [...wit.matchAll(/^\s*export ([^;]+);/gm)].map((m) => m[1].trim());
const foreign = imports.filter((i) => !allowed.includes(i));
console.log(`imports: ${imports.join(', ')}`);
console.log(`exports: ${exports.join(', ')}`);
if (foreign.length > 0) {
  console.error(`unexpected imports: ${foreign.join(', ')}`);
  process.exit(1);
}
