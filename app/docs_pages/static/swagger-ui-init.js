// Starts Swagger UI with the settings the page gives in data attributes: the page has no inline script.
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  const config = JSON.parse(root.dataset.config);
  if (config.oauth2RedirectUrl) config.oauth2RedirectUrl = window.location.origin + config.oauth2RedirectUrl;
  const ui = SwaggerUIBundle({
    ...config,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
  if (root.dataset.initOauth) ui.initOAuth(JSON.parse(root.dataset.initOauth));
  window.ui = ui;
})();
