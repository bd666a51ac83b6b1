// Starts Swagger UI (served by the app from the fastapi-offline package) on the app's own /openapi.json.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,          // no badge fetched from validator.swagger.io: nothing leaves the app
  });
});
