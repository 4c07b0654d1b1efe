import { ApplicationConfig, provideBrowserGlobalErrorListeners } from '@angular/core';
import { provideHttpClient, withInterceptors } from '@angular/common/http';

import { gatehouseAuthInterceptor } from './gatehouse';

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    // Every HttpClient call: Gatehouse's 401 leads to its sign-in and back.
    provideHttpClient(withInterceptors([gatehouseAuthInterceptor])),
    // Gatehouse with another prefix than /oauth2:
    // { provide: GATEHOUSE_PREFIX, useValue: '/auth' },
  ],
};
