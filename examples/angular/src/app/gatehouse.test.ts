/**
 * Tests of gatehouse.ts with Node's test runner (npm test): the pure
 * functions directly, and the interceptor and the user service through
 * Angular's real HttpClient and dependency injection, with
 * HttpClientTestingBackend standing in for the network and a fake location
 * recording where the page was sent.
 */
// JIT compiler for the @Injectable declarations, as Angular's own tests do
// without a build step.
import '@angular/compiler';

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import { NgModule, platformCore } from '@angular/core';
import { BrowserModule } from '@angular/platform-browser';
import { HttpClient, HttpHeaders, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, TestComponentRenderer } from '@angular/core/testing';
import { firstValueFrom } from 'rxjs';

import {
  GATEHOUSE_LOCATION,
  GATEHOUSE_PREFIX,
  GatehouseNavigation,
  GatehouseUserService,
  PageLocation,
  gatehouseAuthInterceptor,
  parseUserinfo,
  sameOrigin,
  signInRequired,
  signInUrl,
} from './gatehouse.js';

// Services only, so no DOM: BrowserModule's providers (none of which touches
// the document until asked) on Angular's core platform, and a renderer that
// renders nothing in place of BrowserTestingModule's.
@NgModule({ imports: [BrowserModule], providers: [{ provide: TestComponentRenderer, useClass: TestComponentRenderer }] })
class NodeTestModule {}
TestBed.initTestEnvironment(NodeTestModule, platformCore());

const GATEHOUSE_401 = {
  status: 401,
  statusText: 'Unauthorized',
  headers: new HttpHeaders({ 'WWW-Authenticate': 'Bearer realm="gatehouse"', 'Content-Type': 'application/json' }),
};
const GATEHOUSE_401_BODY = { error: 'unauthorized', message: 'Sign in at /oauth2/start.' };

/** A location on https://app.example.com that records where the page was sent. */
class FakeLocation implements PageLocation {
  readonly origin = 'https://app.example.com';
  readonly assigned: string[] = [];
  constructor(
    readonly pathname = '/notes/7',
    readonly search = '?tab=history',
    readonly hash = '#top',
  ) {}
  assign(url: string): void {
    this.assigned.push(url);
  }
}

function setUp(page = new FakeLocation(), prefix?: string) {
  TestBed.resetTestingModule();
  TestBed.configureTestingModule({
    providers: [
      provideHttpClient(withInterceptors([gatehouseAuthInterceptor])),
      provideHttpClientTesting(),
      { provide: GATEHOUSE_LOCATION, useValue: page },
      ...(prefix ? [{ provide: GATEHOUSE_PREFIX, useValue: prefix }] : []),
    ],
  });
  return {
    page,
    http: TestBed.inject(HttpClient),
    backend: TestBed.inject(HttpTestingController),
  };
}

/** Subscribes, answers the one request to url with body and init, and returns the outcome. */
async function answer<T>(
  call: Promise<T>,
  backend: HttpTestingController,
  url: string,
  body: unknown,
  init?: { status?: number; statusText?: string; headers?: HttpHeaders },
): Promise<{ value?: T; error?: unknown }> {
  backend.expectOne(url).flush(body as never, init);
  try {
    return { value: await call };
  } catch (error) {
    return { error };
  }
}

describe('signInRequired', () => {
  const cases: Array<[string, number, string | null, unknown, boolean]> = [
    ["Gatehouse's 401", 401, 'Bearer realm="gatehouse"', GATEHOUSE_401_BODY, true],
    ['a body that is not JSON', 401, 'Bearer realm="gatehouse"', 'Unauthorized', true],
    ['no body', 401, 'Bearer realm="gatehouse"', null, true],
    ['header case and spacing', 401, 'bearer REALM = "Gatehouse"', GATEHOUSE_401_BODY, true],
    ["the upstream's own 401 (Django)", 401, 'Bearer realm="api"', { detail: 'Invalid or expired token.' }, false],
    ['a refused bearer token', 401, 'Bearer realm="gatehouse", error="invalid_token"', { error: 'invalid_token' }, false],
    ['another error in the body', 401, 'Bearer realm="gatehouse"', { error: 'invalid_token' }, false],
    ['no challenge at all', 401, null, GATEHOUSE_401_BODY, false],
    ['Basic, not Bearer', 401, 'Basic realm="gatehouse"', GATEHOUSE_401_BODY, false],
    ['realm as a prefix of another', 401, 'Bearer realm="gatehouse-staging"', GATEHOUSE_401_BODY, false],
    ['403: signed in, not allowed', 403, 'Bearer realm="gatehouse"', { error: 'forbidden' }, false],
    ['503: Gatehouse cannot tell', 503, null, { error: 'unavailable' }, false],
  ];
  for (const [name, status, challenge, body, want] of cases) {
    test(name, () => assert.equal(signInRequired(status, challenge, body), want));
  }
});

describe('signInUrl', () => {
  const cases: Array<[string, Pick<PageLocation, 'pathname' | 'search' | 'hash'>, string]> = [
    ['path, query and fragment', { pathname: '/notes/7', search: '?tab=history', hash: '#top' }, '/notes/7?tab=history#top'],
    ['the root', { pathname: '/', search: '', hash: '' }, '/'],
    ['encoded characters stay encoded', { pathname: '/a%20b/%2F', search: '?q=a&b=%26', hash: '' }, '/a%20b/%2F?q=a&b=%26'],
    ['leading slashes folded', { pathname: '//evil.example/x', search: '', hash: '' }, '/evil.example/x'],
    ['leading backslashes folded', { pathname: '/\\evil.example', search: '', hash: '' }, '/evil.example'],
    ['an empty path', { pathname: '', search: '?x=1', hash: '' }, '/?x=1'],
  ];
  for (const [name, page, rd] of cases) {
    test(name, () => {
      const url = new URL(signInUrl('/oauth2', page), 'https://app.example.com');
      assert.equal(url.pathname, '/oauth2/start');
      assert.equal(url.searchParams.get('rd'), rd);
      assert.equal([...url.searchParams.keys()].join(), 'rd');
    });
  }
  test('another prefix', () => assert.match(signInUrl('/auth', { pathname: '/', search: '', hash: '' }), /^\/auth\/start\?rd=/));
});

describe('sameOrigin', () => {
  const origin = 'https://app.example.com';
  const cases: Array<[string, boolean]> = [
    ['/api/notes', true],
    ['api/notes', true],
    ['https://app.example.com/api', true],
    ['https://api.example.com/notes', false],
    ['http://app.example.com/api', false],
    ['https://app.example.com:8443/api', false],
    ['//evil.example/api', false],
  ];
  for (const [url, want] of cases) {
    test(url, () => assert.equal(sameOrigin(url, origin), want));
  }
});

describe('gatehouseAuthInterceptor', () => {
  beforeEach(() => TestBed.resetTestingModule());

  test("Gatehouse's 401 sends the page to sign-in and back, and the caller still sees the 401", async () => {
    const { page, http, backend } = setUp();
    const got = await answer(firstValueFrom(http.get('/api/notes')), backend, '/api/notes', GATEHOUSE_401_BODY, GATEHOUSE_401);
    assert.deepEqual(page.assigned, ['/oauth2/start?rd=%2Fnotes%2F7%3Ftab%3Dhistory%23top']);
    assert.equal((got.error as { status?: number } | undefined)?.status, 401);
    backend.verify();
  });

  test('parallel 401s leave the page once', async () => {
    const { page, http, backend } = setUp();
    const calls = ['/api/a', '/api/b', '/api/c'].map((url) => firstValueFrom(http.get(url)));
    for (const url of ['/api/a', '/api/b', '/api/c']) {
      backend.expectOne(url).flush(GATEHOUSE_401_BODY, GATEHOUSE_401);
    }
    await Promise.allSettled(calls);
    assert.equal(page.assigned.length, 1, `navigations: ${page.assigned}`);
  });

  test('a configured prefix', async () => {
    const { page, http, backend } = setUp(new FakeLocation('/', '', ''), '/auth');
    await answer(firstValueFrom(http.get('/api/notes')), backend, '/api/notes', GATEHOUSE_401_BODY, {
      ...GATEHOUSE_401,
    });
    assert.deepEqual(page.assigned, ['/auth/start?rd=%2F']);
  });

  const leftAlone: Array<[string, string, unknown, { status: number; statusText: string; headers: HttpHeaders }]> = [
    ["the upstream's own 401", '/api/notes', { detail: 'Invalid or expired token.' }, {
      status: 401, statusText: 'Unauthorized', headers: new HttpHeaders({ 'WWW-Authenticate': 'Bearer realm="api"' }),
    }],
    ['a refused bearer token', '/api/notes', { error: 'invalid_token' }, {
      status: 401, statusText: 'Unauthorized',
      headers: new HttpHeaders({ 'WWW-Authenticate': 'Bearer realm="gatehouse", error="invalid_token"' }),
    }],
    ['403', '/api/notes', { error: 'forbidden' }, { status: 403, statusText: 'Forbidden', headers: new HttpHeaders() }],
    ['500', '/api/notes', 'oops', { status: 500, statusText: 'Internal Server Error', headers: new HttpHeaders() }],
    ["another origin's Gatehouse-like 401", 'https://api.example.com/notes', GATEHOUSE_401_BODY, GATEHOUSE_401],
  ];
  for (const [name, url, body, init] of leftAlone) {
    test(`${name}: the error reaches the caller and the page stays`, async () => {
      const { page, http, backend } = setUp();
      const got = await answer(firstValueFrom(http.get(url)), backend, url, body, init);
      assert.deepEqual(page.assigned, []);
      assert.equal((got.error as { status?: number } | undefined)?.status, init.status);
    });
  }

  test('success passes through untouched', async () => {
    const { page, http, backend } = setUp();
    const got = await answer(firstValueFrom(http.get<{ n: number }>('/api/n')), backend, '/api/n', { n: 1 });
    assert.deepEqual(got.value, { n: 1 });
    assert.deepEqual(page.assigned, []);
  });
});

describe('GatehouseUserService', () => {
  beforeEach(() => TestBed.resetTestingModule());

  test('the signed-in user', async () => {
    const { page, backend } = setUp();
    const users = TestBed.inject(GatehouseUserService);
    const got = await answer(firstValueFrom(users.current()), backend, '/oauth2/userinfo', {
      user: 'u-alice',
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Liddell',
      preferred_username: 'alice',
      groups: ['admins', 'developers'],
    });
    assert.deepEqual(got.value, {
      user: 'u-alice',
      email: 'alice@example.com',
      emailVerified: true,
      name: 'Alice Liddell',
      preferredUsername: 'alice',
      groups: ['admins', 'developers'],
    });
    assert.deepEqual(page.assigned, []);
  });

  test("nobody signed in is null, and the page stays (no sign-in loop)", async () => {
    const { page, backend } = setUp();
    const users = TestBed.inject(GatehouseUserService);
    const got = await answer(firstValueFrom(users.current()), backend, '/oauth2/userinfo', { error: 'unauthorized', message: 'Not signed in.' }, GATEHOUSE_401);
    assert.equal(got.error, undefined);
    assert.equal(got.value, null);
    assert.deepEqual(page.assigned, []);
  });

  test('Gatehouse unavailable is an error, not "nobody"', async () => {
    const { backend } = setUp();
    const users = TestBed.inject(GatehouseUserService);
    const got = await answer(firstValueFrom(users.current()), backend, '/oauth2/userinfo', { error: 'unavailable' }, {
      status: 503, statusText: 'Service Unavailable',
    });
    assert.equal((got.error as { status?: number } | undefined)?.status, 503);
  });

  test('a configured prefix', async () => {
    const { backend } = setUp(new FakeLocation(), '/auth');
    const users = TestBed.inject(GatehouseUserService);
    const got = await answer(firstValueFrom(users.current()), backend, '/auth/userinfo', { user: 'u-bob' });
    assert.equal(got.value?.user, 'u-bob');
  });
});

describe('GatehouseNavigation', () => {
  beforeEach(() => TestBed.resetTestingModule());

  test('sign-out ends the Gatehouse session and lands on a path here', () => {
    const { page } = setUp();
    TestBed.inject(GatehouseNavigation).signOut('/bye?x=1');
    assert.deepEqual(page.assigned, ['/oauth2/sign_out?rd=%2Fbye%3Fx%3D1']);
  });
});

describe('parseUserinfo', () => {
  test('missing optional fields are empty', () => {
    assert.deepEqual(parseUserinfo({ user: 'u-carol' }), {
      user: 'u-carol', email: '', emailVerified: false, name: '', preferredUsername: '', groups: [],
    });
  });
  test('email_verified must be exactly true', () => {
    assert.equal(parseUserinfo({ user: 'u', email_verified: 'true' }).emailVerified, false);
  });
  const refused: Array<[string, unknown]> = [
    ['not an object', 'alice'],
    ['an array', [{ user: 'u' }]],
    ['null', null],
    ['no user', { email: 'a@example.com' }],
    ['user not a string', { user: 7 }],
    ['groups not a list', { user: 'u', groups: 'admins' }],
    ['a group not a string', { user: 'u', groups: ['admins', 1] }],
    ['email not a string', { user: 'u', email: ['a@example.com'] }],
  ];
  for (const [name, body] of refused) {
    test(`refuses ${name}`, () => assert.throws(() => parseUserinfo(body), /^Error: gatehouse: userinfo/));
  }
});
