// Starts Swagger UI on the spec the page names. A file of its own, not an inline script, so the
// page runs under a Content-Security-Policy that allows scripts from the node only.
"use strict";

const root = document.getElementById("swagger-ui");
SwaggerUIBundle({
  domNode: root,
  url: root.dataset.spec,
  deepLinking: true,
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  // The default would send the spec to validator.swagger.io: nothing leaves the node's network.
  validatorUrl: null,
});
