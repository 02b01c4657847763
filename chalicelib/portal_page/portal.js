/* Relais portal page: what a contributor opens from the link in an invitation email.
   The link's secret arrives in the URL fragment (#token=…), never sent to any server log; it is kept in
   this tab's sessionStorage (a reload still works) and taken out of the address bar at once. Every call
   goes to the portal API of the host that served this page. No framework, no build step. */
(function () {
  "use strict";

  var TOKEN_KEY = "relais.portal.token";
  var TYPE_NAMES = {
    "application/pdf": "PDF",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/heic": "HEIC",
    "image/webp": "WebP",
    "image/tiff": "TIFF",
    "application/msword": "Word",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.oasis.opendocument.text": "OpenDocument",
    "text/plain": "texte"
  };
  var EXTENSIONS = {
    pdf: "application/pdf", jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", heic: "image/heic",
    webp: "image/webp", tif: "image/tiff", tiff: "image/tiff", doc: "application/msword",
    docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    odt: "application/vnd.oasis.opendocument.text", txt: "text/plain"
  };
  var STATUS = {
    missing: "À fournir",
    pending_review: "En cours de vérification",
    approved: "Validée",
    rejected: "Refusée"
  };

  var token = readToken();
  var view = null;

  function $(id) { return document.getElementById(id); }

  function readToken() {
    var match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash || "");
    if (match) {
      var found = decodeURIComponent(match[1]);
      try { window.sessionStorage.setItem(TOKEN_KEY, found); } catch (e) { /* private mode: keep it in memory */ }
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return found;
    }
    try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function apiUrl(path) {
    return new URL(path, window.location.href).toString();
  }

  function call(method, path, body, accept) {
    var init = {
      method: method,
      headers: { "Authorization": "Bearer " + token, "Accept": accept || "application/json" },
      cache: "no-store"
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(apiUrl(path), init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (response.status === 401) { deadLink(); throw new Error("invalid link"); }
        return { status: response.status, body: data };
      });
    });
  }

  function showOnly(id) {
    ["loading", "invalid", "failure", "dossier"].forEach(function (section) {
      $(section).hidden = section !== id;
    });
    if (id !== "dossier") { $("main").focus(); }
  }

  function deadLink() {
    showOnly("invalid");
    if (!token) { return; }
    // The link no longer opens the dossier, but it still names the broker who sent it.
    fetch(apiUrl("portal-link/broker"), {
      headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
      cache: "no-store"
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (broker) {
      if (!broker) { return; }
      $("invalid-broker").textContent = broker.name;
      $("invalid-email").textContent = broker.contact.email;
      $("invalid-email").href = "mailto:" + broker.contact.email;
      $("invalid-phone").textContent = broker.contact.phone || "";
      $("invalid-phone-row").hidden = !broker.contact.phone;
      $("invalid-contact").hidden = false;
      $("brand").textContent = broker.name;
    }).catch(function () { /* the generic message stays */ });
  }

  function renderBroker(broker) {
    $("brand").textContent = broker.name;
    var logo = $("logo");
    if (broker.logo_url) {
      logo.src = broker.logo_url;
      logo.alt = "Logo de " + broker.name;
      logo.hidden = false;
    } else {
      logo.hidden = true;
    }
    // CSSOM, not a style attribute: the page's CSP admits no inline style.
    if (broker.brand_color) {
      document.documentElement.style.setProperty("--accent", broker.brand_color);
    } else {
      document.documentElement.style.removeProperty("--accent");
    }
    $("footer-name").textContent = broker.name;
    var mentions = $("footer-mentions");
    mentions.textContent = "";
    broker.legal_mentions.slice(1).forEach(function (line) {
      var item = document.createElement("li");
      item.textContent = line;
      mentions.appendChild(item);
    });
    var contact = $("footer-contact");
    contact.textContent = "Contact\u00a0: ";
    var mail = document.createElement("a");
    mail.href = "mailto:" + broker.contact.email;
    mail.textContent = broker.contact.email;
    contact.appendChild(mail);
    // The legal mentions already give the address and phone; without them, the contact does.
    if (!broker.legal_mentions.length && broker.contact.phone) {
      contact.appendChild(document.createTextNode(" · Tél.\u00a0: " + broker.contact.phone));
    }
    $("footer").hidden = false;
  }

  function renderPrivacy(privacy) {
    $("privacy-controller").textContent = "Responsable du traitement\u00a0: " + privacy.controller +
      " (" + privacy.contact_email + ").";
    $("privacy-dossier-of").hidden = !privacy.dossier_of;
    $("privacy-dossier-of").textContent = privacy.dossier_of
      ? "Vous intervenez dans le dossier de " + privacy.dossier_of + "." : "";
    $("privacy-purpose").textContent = privacy.purpose;
    $("privacy-retention").textContent = privacy.retention;
    $("privacy-rights").textContent = privacy.rights;
    $("privacy").hidden = false;
  }

  function frenchDate(iso) {
    if (!iso) { return ""; }
    var parts = iso.slice(0, 10).split("-");
    return parts[2] + "/" + parts[1] + "/" + parts[0];
  }

  function typeNames(types) {
    var names = [];
    types.forEach(function (type) {
      var name = TYPE_NAMES[type] || type;
      if (names.indexOf(name) < 0) { names.push(name); }
    });
    if (names.length < 2) { return names.join(""); }
    return names.slice(0, -1).join(", ") + " ou " + names[names.length - 1];
  }

  function statusOf(doc) {
    return doc.status === "missing" && doc.review ? "rejected" : doc.status;
  }

  function load() {
    if (!token) { deadLink(); return; }
    call("GET", "portal").then(function (answer) {
      if (answer.status !== 200) { showOnly("failure"); return; }
      view = answer.body;
      render();
      showOnly("dossier");
    }).catch(function (error) {
      if (error.message !== "invalid link") { showOnly("failure"); }
    });
  }

  function render() {
    var me = view.me;
    var editable = me.permissions.access === "edit";
    $("reference").textContent = view.dossier.reference;
    $("procedure").textContent = view.dossier.procedure_name;
    $("me").textContent = me.name;
    $("role").textContent = me.role_name;
    $("due-row").hidden = !view.dossier.due_date;
    $("due").textContent = frenchDate(view.dossier.due_date);
    $("view-only").hidden = editable;
    $("finished").hidden = !view.finished;
    document.title = "Dossier " + view.dossier.reference + " – " + view.broker.name;
    renderBroker(view.broker);
    renderPrivacy(view.privacy);

    var list = $("documents");
    list.textContent = "";
    view.documents.forEach(function (doc) { list.appendChild(documentItem(doc, editable)); });
    if (!view.documents.length) {
      var empty = document.createElement("li");
      empty.className = "card";
      empty.textContent = "Aucune pièce ne vous est demandée dans ce dossier.";
      list.appendChild(empty);
    }

    var mine = view.documents.filter(function (d) { return d.mine; });
    var missing = mine.filter(function (d) { return d.required && d.status === "missing"; });
    $("finish-card").hidden = !editable || view.finished || !mine.length;
    $("finish").disabled = missing.length > 0;
    $("finish-hint").textContent = missing.length
      ? "Il reste " + missing.length + " pièce" + (missing.length > 1 ? "s" : "") + " obligatoire" +
        (missing.length > 1 ? "s" : "") + " à déposer avant de pouvoir terminer."
      : "Prévenez votre gestionnaire que vous avez déposé toutes vos pièces.";

    var select = $("invite-role");
    select.textContent = "";
    (view.roles || []).forEach(function (role) {
      var option = document.createElement("option");
      option.value = role.id;
      option.textContent = role.name;
      select.appendChild(option);
    });
    $("invite-card").hidden = !me.permissions.can_invite || !(view.roles || []).length;
  }

  function documentItem(doc, editable) {
    var item = $("document-template").content.firstElementChild.cloneNode(true);
    var status = statusOf(doc);
    var headingId = "doc-" + doc.id;
    item.querySelector(".label").textContent = doc.label + (doc.required ? "" : " (facultatif)");
    item.querySelector(".label").id = headingId;
    item.setAttribute("aria-labelledby", headingId);
    var badge = item.querySelector(".badge");
    badge.textContent = STATUS[status] || status;
    badge.className = "badge " + status;
    item.querySelector(".description").textContent = doc.description || "";
    item.querySelector(".description").hidden = !doc.description;
    var meta = doc.mine
      ? typeNames(doc.accepted_types) + " · " + doc.max_size_mb + "\u00a0Mo maximum"
      : "À fournir par\u00a0: " + doc.role_name;
    item.querySelector(".meta").textContent = meta;
    if (status === "rejected") {
      var review = item.querySelector(".review");
      review.hidden = false;
      review.textContent = "Refusée\u00a0: " + doc.review.comment;
    }
    var files = item.querySelector(".files");
    (doc.files || []).forEach(function (file) { files.appendChild(fileRow(doc, file)); });
    if (doc.mine && editable && doc.status !== "approved") {
      var upload = item.querySelector(".upload");
      var input = item.querySelector(".file-input");
      var label = item.querySelector(".upload-label");
      input.id = "file-" + doc.id;
      label.setAttribute("for", input.id);
      label.querySelector(".upload-title").textContent = (doc.files || []).length || status === "rejected"
        ? "Envoyer un autre fichier pour «\u00a0" + doc.label + "\u00a0»"
        : "Choisir le fichier «\u00a0" + doc.label + "\u00a0»";
      input.accept = doc.accepted_types.join(",");
      upload.hidden = false;
      input.addEventListener("change", function () {
        if (input.files && input.files[0]) { send(doc, input.files[0], item); }
      });
    }
    return item;
  }

  function fileRow(doc, file) {
    var row = document.createElement("li");
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = file.filename;
    row.appendChild(name);
    if (file.status === "rejected") {
      var reason = document.createElement("span");
      reason.className = "error";
      reason.textContent = "Fichier refusé\u00a0: " + (file.reason || "format non reconnu");
      row.appendChild(reason);
    }
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Télécharger";
    button.setAttribute("aria-label", "Télécharger " + file.filename);
    button.addEventListener("click", function () { download(doc, file); });
    row.appendChild(button);
    return row;
  }

  function download(doc, file) {
    call("GET", "portal/documents/" + doc.id + "/files/" + file.id, undefined, "application/json")
      .then(function (answer) {
        if (answer.status === 200 && answer.body && answer.body.url) {
          window.location.assign(answer.body.url);
        } else {
          announce("Ce fichier n’est pas disponible\u00a0: rechargez la page puis réessayez.");
        }
      });
  }

  function contentTypeOf(file) {
    if (file.type) { return file.type; }
    var extension = (file.name.split(".").pop() || "").toLowerCase();
    return EXTENSIONS[extension] || "application/octet-stream";
  }

  function fail(item, message) {
    var error = item.querySelector(".upload-error");
    error.textContent = message;
    error.hidden = false;
    item.querySelector(".progress").hidden = true;
    item.querySelector(".file-input").disabled = false;
    item.querySelector(".file-input").value = "";
  }

  function send(doc, file, item) {
    var error = item.querySelector(".upload-error");
    var input = item.querySelector(".file-input");
    var progress = item.querySelector(".progress");
    error.hidden = true;
    var type = contentTypeOf(file);
    if (doc.accepted_types.indexOf(type) < 0) {
      fail(item, "Ce type de fichier n’est pas accepté\u00a0: choisissez un fichier " + typeNames(doc.accepted_types) + ".");
      return;
    }
    if (file.size > doc.max_size_mb * 1024 * 1024) {
      fail(item, "Ce fichier dépasse " + doc.max_size_mb + "\u00a0Mo\u00a0: réduisez sa taille ou scannez-le en plus basse résolution.");
      return;
    }
    if (file.size === 0) {
      fail(item, "Ce fichier est vide\u00a0: choisissez le bon fichier.");
      return;
    }
    input.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    progress.setAttribute("aria-label", "Envoi de " + file.name);
    announce("Envoi de " + file.name + " en cours.");
    call("POST", "portal/documents/" + doc.id + "/uploads", { filename: file.name, content_type: type, size: file.size })
      .then(function (answer) {
        if (answer.status !== 201) { throw new Error(refusal(answer, doc)); }
        return upload(answer.body, file, progress).then(function () { return answer.body.upload_id; });
      })
      .then(function (uploadId) {
        return call("POST", "portal/documents/" + doc.id + "/uploads/" + uploadId + "/complete");
      })
      .then(function (answer) {
        if (answer.status === 400) {
          throw new Error("Le contenu du fichier ne correspond pas à son type\u00a0: enregistrez-le au bon format puis renvoyez-le.");
        }
        if (answer.status !== 200) { throw new Error(refusal(answer, doc)); }
        announce("«\u00a0" + doc.label + "\u00a0» a bien été envoyé\u202f; il est en cours de vérification.");
        load();
      })
      .catch(function (problem) {
        if (problem.message === "invalid link") { return; }
        fail(item, problem.message);
        load();
      });
  }

  function refusal(answer, doc) {
    if (answer.status === 409 && doc && doc.status !== "approved") {
      return "Cette pièce a déjà reçu beaucoup de fichiers\u00a0: attendez que votre gestionnaire les vérifie.";
    }
    if (answer.status === 409) { return "Cette pièce est déjà validée\u00a0: vous n’avez plus rien à envoyer."; }
    if (answer.status === 403) { return "Votre rôle ne permet pas de déposer cette pièce."; }
    if (answer.status === 400) { return "Ce fichier n’est pas accepté pour cette pièce\u00a0: vérifiez son type et sa taille."; }
    return "L’envoi a échoué\u00a0: vérifiez votre connexion puis réessayez.";
  }

  function upload(target, file, progress) {
    return new Promise(function (resolve, reject) {
      var form = new FormData();
      Object.keys(target.fields).forEach(function (name) { form.append(name, target.fields[name]); });
      form.append("file", file);
      var request = new XMLHttpRequest();
      request.open("POST", target.url);
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { progress.value = Math.round((event.loaded / event.total) * 100); }
      });
      request.addEventListener("load", function () {
        if (request.status >= 200 && request.status < 300) {
          progress.value = 100;
          resolve();
        } else {
          reject(new Error("L’envoi a été refusé\u00a0: le lien d’envoi a peut-être expiré, choisissez à nouveau le fichier."));
        }
      });
      request.addEventListener("error", function () {
        reject(new Error("L’envoi a échoué\u00a0: vérifiez votre connexion puis réessayez."));
      });
      request.send(form);
    });
  }

  function announce(message) {
    $("status").textContent = message;
  }

  function finish() {
    var problem = $("finish-error");
    problem.hidden = true;
    call("POST", "portal/finish").then(function (answer) {
      if (answer.status === 200) {
        announce("Merci\u00a0: votre gestionnaire est prévenu.");
        load();
      } else {
        problem.textContent = answer.status === 409
          ? "Il manque encore une pièce obligatoire\u00a0: déposez-la puis réessayez."
          : "Votre réponse n’a pas pu être enregistrée\u00a0: réessayez dans un instant.";
        problem.hidden = false;
      }
    });
  }

  function invite(event) {
    event.preventDefault();
    var message = $("invite-message");
    var name = $("invite-name").value.trim();
    var email = $("invite-email").value.trim();
    message.className = "";
    if (!name || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
      message.className = "error";
      message.textContent = "Indiquez le nom et une adresse email valide de la personne à inviter.";
      return;
    }
    call("POST", "portal/contributors", { role_id: $("invite-role").value, name: name, email: email })
      .then(function (answer) {
        if (answer.status === 201) {
          message.textContent = "Invitation envoyée à " + email + ".";
          $("invite").reset();
        } else {
          message.className = "error";
          message.textContent = answer.status === 409
            ? "Une personne est déjà invitée pour ce rôle\u00a0: demandez à votre gestionnaire de la remplacer."
            : "L’invitation n’a pas pu être envoyée\u00a0: vérifiez le nom et l’adresse email.";
        }
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("retry").addEventListener("click", load);
    $("finish").addEventListener("click", finish);
    $("invite").addEventListener("submit", invite);
    // Another invitation link opened in this tab only changes the fragment: no page load follows.
    window.addEventListener("hashchange", function () {
      if (/(?:^|[#&])token=/.test(window.location.hash || "")) {
        token = readToken();
        showOnly("loading");
        load();
      }
    });
    load();
  });
})();
