// Carrier-aware scope: the defaults, the hard limits, and what a scoped grant is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileYaml } from '../../gateway/config/load.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { makeGrant } from '../../gateway/core/grant.ts';
import { enforceable } from '../../gateway/core/grant-policy.ts';
import { exposureInWords, prefixFor } from '../../gateway/core/scope.ts';
import { desiredEntries } from '../../gateway/core/plan.ts';
import { renderOps } from '../../gateway/core/nft-ruleset.ts';
import { assertHostCidr, hostGrants } from '../../gateway/adapters/cloud/index.ts';
import { GrantSchema } from '../../gateway/adapters/store/index.ts';
import type { Door } from '../../gateway/core/types.ts';

const SSH = [{ port: 22, proto: 'tcp' as const }];
const base = { door: 'phone', ports: SSH, ttlMs: 60_000, nodeId: 'n', now: 1_000_000 };

void test('defaults: one address on IPv4; on IPv6 one address for sequences and SPA, the /64 for relay and phone knocks', () => {
  assert.equal(prefixFor(undefined, 4, 'relay'), 32);
  assert.equal(prefixFor(undefined, 4, 'knock'), 32);
  assert.equal(prefixFor(undefined, 6, 'relay'), 64);
  assert.equal(prefixFor(undefined, 6, 'knock'), 128);
  assert.equal(prefixFor(undefined, 6, 'spa'), 128);
  assert.equal(prefixFor({ v4: 24 }, 4, 'knock'), 24);
  assert.equal(prefixFor({ v6: 128 }, 6, 'relay'), 128, "a door's own v6 scope wins over the relay default");
});

void test('a door scope wider than /16 or /48 is a config error, with the line', () => {
  const door = (scope: string) => `doors:\n  - name: phone\n    sequence: [7000, 8000]\n    scope: ${scope}\n`;
  for (const [scope, what] of [['{ v4: 15 }', /v4.*\/16/], ['{ v6: 47 }', /v6.*\/48/], ['{ v4: 0 }', /v4/], ['{ v6: 129 }', /v6/], ['{ v5: 1 }', /v5/]] as const) {
    assert.throws(() => compileYaml(door(scope), '/etc/k.yaml', 'gw'), (err: unknown) => isKnockgwError(err, 'KGW_CONFIG_INVALID') && what.test(err.message) && /k\.yaml:4/.test(err.message), scope);
  }
  const cfg = compileYaml(door('{ v4: 16, v6: 48 }'), '/etc/k.yaml', 'gw');
  assert.deepEqual(cfg.doors[0]?.scope, { v4: 16, v6: 48 });
});

void test('a scoped grant names its network; the id says so; an unscoped one is unchanged', () => {
  const g = makeGrant({ ...base, ip: '2001:db8:1:2:a:b:c:d', source: 'relay', prefix: 64 });
  assert.equal(g.ip, '2001:db8:1:2::');
  assert.equal(g.prefix, 64);
  assert.equal(g.id, 'phone@2001:db8:1:2::/64');
  const host = makeGrant({ ...base, ip: '198.51.100.7', source: 'relay', prefix: 32 });
  assert.equal(host.id, 'phone@198.51.100.7');
  assert.equal('prefix' in host, false);
  assert.throws(() => makeGrant({ ...base, ip: '198.51.100.7', source: 'relay', prefix: 8 }), (e: unknown) => isKnockgwError(e, 'KGW_IP_REFUSED'));
  assert.throws(() => makeGrant({ ...base, ip: '127.0.0.1', source: 'relay', prefix: 16 }), (e: unknown) => isKnockgwError(e, 'KGW_IP_REFUSED'), 'the knocking host is checked before widening');
});

void test('a stored grant wider than its door now allows is dropped, a narrower one kept', () => {
  const doors = new Map<string, Door>([['phone', { name: 'phone', open: SSH, ttlMs: 60_000, scope: { v4: 24 } }]]);
  const wide = makeGrant({ ...base, ip: '198.51.100.7', source: 'relay', prefix: 20 });
  assert.match(String((enforceable(wide, doors, base.now) as { drop: string }).drop), /\/24/);
  const ok = makeGrant({ ...base, ip: '198.51.100.7', source: 'relay', prefix: 24 });
  assert.equal((enforceable(ok, doors, base.now) as { grant: unknown }).grant, ok);
  // A grant read back from Redis with host bits under its prefix is not a grant.
  assert.equal(GrantSchema.safeParse({ ...ok, ip: '198.51.100.7' }).success, false);
  assert.deepEqual(GrantSchema.parse(JSON.parse(JSON.stringify(ok)) as unknown), ok);
});

void test('nftables puts scoped grants in the interval sets and exact ones where they were', () => {
  const grants = [
    makeGrant({ ...base, ip: '2001:db8:1:2::9', source: 'relay', prefix: 64 }),
    makeGrant({ ...base, ip: '198.51.100.7', source: 'relay' }),
  ];
  const script = renderOps(desiredEntries(grants, base.now).map((entry) => ({ op: 'add' as const, entry, fresh: true })), base.now);
  assert.match(script, /add element inet knockgw allowed4 \{ 198\.51\.100\.7 \. tcp \. 22 timeout 60000ms \}/);
  assert.match(script, /add element inet knockgw allowed6net \{ 2001:db8:1:2::\/64 \. tcp \. 22 timeout 60000ms \}/);
});

void test('cloud ranges: a scoped network within the limits passes, anything wider or with host bits is refused', () => {
  const g = makeGrant({ ...base, ip: '2001:db8:1:2::9', source: 'relay', prefix: 64 });
  assert.equal(hostGrants([g], { needPorts: true })[0]?.cidr, '2001:db8:1:2::/64');
  assert.equal(assertHostCidr('198.51.0.0/16'), '198.51.0.0/16');
  for (const bad of ['0.0.0.0/0', '::/0', '198.0.0.0/8', '2001:db8::/32', '198.51.100.7/24', '2001:db8:1:2::9/64']) {
    assert.throws(() => assertHostCidr(bad), (e: unknown) => isKnockgwError(e, 'KGW_CLOUD_REFUSED'), bad);
  }
});

void test('the exposure in words', () => {
  assert.equal(exposureInWords(4, 32), 'one address');
  assert.match(exposureInWords(4, 24), /^256 addresses/);
  assert.match(exposureInWords(6, 64), /one IPv6 subnet/);
  assert.match(exposureInWords(6, 48), /65536 IPv6 subnets/);
});
