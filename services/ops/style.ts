// The one stylesheet, served at /style.css (the CSP allows styles from 'self' only, no inline
// style). System fonts, no external assets; a single column below 40rem so a phone at 390 px
// reads every card and scrolls wide tables inside their own box.
export const STYLE_CSS = `
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #f6f7f9; --card: #fff; --line: #d6dae0; --muted: #5b6470;
  --ok: #1f883d; --warn: #d97706; --full: #cf222e; --link: #0b63c5; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --bg: #14171b; --card: #1d2127; --line: #343a42; --muted: #9aa3ad; --link: #6cb2ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .25rem 1rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
header .brand { font-weight: 700; }
nav { display: flex; flex-wrap: wrap; gap: .2rem .9rem; }
nav a { color: var(--link); text-decoration: none; }
nav a[aria-current] { font-weight: 700; text-decoration: underline; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h1 { font-size: 1.35rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
a { color: var(--link); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: .8rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .7rem .9rem; min-width: 0; }
.card h3 { margin: 0 0 .4rem; font-size: 1rem; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; border: 1px solid var(--line); font-size: .85em; }
.badge.ok { border-color: var(--ok); color: var(--ok); }
.badge.warn { border-color: var(--warn); color: var(--warn); }
.badge.full, .badge.error { border-color: var(--full); color: var(--full); }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
.scroll table { width: max-content; min-width: 100%; }
td.wrap { white-space: normal; min-width: 8rem; max-width: 24rem; overflow-wrap: anywhere; }
th { font-weight: 600; color: var(--muted); white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: 0 0 .8rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
input, select, button { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
button { cursor: pointer; }
.message { padding: .5rem .8rem; border-left: 4px solid var(--warn); background: var(--card); margin: 0 0 .8rem; }
.message.error { border-color: var(--full); }
svg.bar { width: 100%; height: .7rem; display: block; margin: .3rem 0; }
svg.bar .track { fill: var(--line); }
svg.bar .ok { fill: var(--ok); }
svg.bar .warn { fill: var(--warn); }
svg.bar .full { fill: var(--full); }
.pager { display: flex; gap: 1rem; margin: .6rem 0; }
.stuck { color: var(--full); font-weight: 600; }
footer { padding: 1rem; color: var(--muted); font-size: .85rem; text-align: center; }
@media (max-width: 40rem) { main { padding: .6rem; } dl { grid-template-columns: 1fr; } dt { margin-top: .3rem; } }
`;
