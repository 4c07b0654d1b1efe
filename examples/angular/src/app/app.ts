import { Component, inject, signal } from '@angular/core';
import { HttpClient, HttpErrorResponse } from '@angular/common/http';

import { GatehouseNavigation, GatehouseUser, GatehouseUserService } from './gatehouse';

/**
 * Shows who Gatehouse says is signed in and what the API behind it answers.
 * Served behind Gatehouse (same origin as the API), it never handles a
 * password or a token: the browser's cookie and Gatehouse do.
 */
@Component({
  selector: 'app-root',
  template: `
    <h1>Behind Gatehouse</h1>
    @switch (state()) {
      @case ('loading') {
        <p>Asking Gatehouse who you are…</p>
      }
      @case ('signed-out') {
        <p>Nobody is signed in.</p>
        <button type="button" (click)="navigation.signIn()">Sign in</button>
      }
      @case ('signed-in') {
        @if (user(); as u) {
          <p>
            Signed in as <strong>{{ u.name || u.preferredUsername || u.user }}</strong>
            @if (u.email) {
              ({{ u.email }}{{ u.emailVerified ? '' : ', not verified' }})
            }
          </p>
          <p>Groups: {{ u.groups.length ? u.groups.join(', ') : 'none' }}</p>
          <button type="button" (click)="callApi()">Ask the API who I am</button>
          @if (api(); as answer) {
            <pre>{{ answer }}</pre>
          }
          <button type="button" (click)="navigation.signOut()">Sign out</button>
        }
      }
      @case ('error') {
        <p>Gatehouse could not be asked; try again shortly.</p>
      }
    }
  `,
})
export class App {
  protected readonly navigation = inject(GatehouseNavigation);
  private readonly http = inject(HttpClient);
  protected readonly state = signal<'loading' | 'signed-out' | 'signed-in' | 'error'>('loading');
  protected readonly user = signal<GatehouseUser | null>(null);
  protected readonly api = signal<string>('');

  constructor() {
    inject(GatehouseUserService)
      .current()
      .subscribe({
        next: (u) => {
          this.user.set(u);
          this.state.set(u ? 'signed-in' : 'signed-out');
        },
        error: () => this.state.set('error'),
      });
  }

  /** A call to the upstream; if the session has ended, the interceptor signs in again. */
  protected callApi(): void {
    this.http.get<unknown>('/api/whoami').subscribe({
      next: (body) => this.api.set(JSON.stringify(body, null, 2)),
      error: (err: HttpErrorResponse) => this.api.set(`${err.status} ${err.statusText}`),
    });
  }
}
