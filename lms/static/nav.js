// The navigation bar every page shows (in its <nav id="site-nav">): what the signed-in user's
// role may open. A learner: their dashboard. An instructor: also each course they teach, its
// analytics and live room. An admin: also the admin page, the transcode jobs and the API docs.
// The server checks every call anyway; the bar only leaves out what would be refused.

import { api, logOut } from "/static/session.js";

const COURSES_SHOWN = 200;  // the catalogue's largest page

export async function renderNav(me) {
  const nav = document.getElementById("site-nav");
  const links = [link("dashboard", "/dashboard", "Dashboard")];
  if (me.role === "instructor" || me.role === "admin") {
    const courses = await api(`/api/v1/courses?limit=${COURSES_SHOWN}`).catch(() => []);
    const taught = courses.filter((course) => course.owner_id === me.id);
    if (taught.length) links.push(courseMenu(taught));
  }
  if (me.role === "admin") {
    links.push(link("admin", "/admin", "Admin"), link("jobs", "/admin/jobs", "Jobs"), link("docs", "/docs", "API docs"));
  }
  const brand = link("home", "/dashboard", "LMS");
  brand.className = "brand";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = `${me.name} · ${me.role}`;
  const out = document.createElement("button");
  out.type = "button";
  out.id = "logout";
  out.textContent = "Sign out";
  out.addEventListener("click", logOut);
  const list = document.createElement("ul");
  list.append(...links.map((a) => { const li = document.createElement("li"); li.append(a); return li; }));
  nav.replaceChildren(brand, list, who, out);
  nav.dataset.role = me.role;
}

function link(name, href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.dataset.nav = name;
  if (location.pathname === href) a.setAttribute("aria-current", "page");
  return a;
}

// A menu of the courses taught: each with its analytics and its live room.
function courseMenu(courses) {
  const menu = document.createElement("details");
  menu.className = "menu";
  const summary = document.createElement("summary");
  summary.textContent = "My courses";
  const list = document.createElement("ul");
  for (const course of courses) {
    const item = document.createElement("li");
    const title = document.createElement("span");
    title.textContent = course.title;
    item.append(
      title,
      link("analytics", `/courses/${course.id}/analytics`, "analytics"),
      link("live", `/live/${course.id}`, "live"),
    );
    item.dataset.course = course.id;
    list.append(item);
  }
  menu.append(summary, list);
  return menu;
}
