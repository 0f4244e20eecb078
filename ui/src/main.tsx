// Entry point: loads engine state, then renders the frame.

import { render } from "preact";
import { App } from "./app";
import { start } from "./api/store";
import "./styles.css";

document.documentElement.dataset.theme = localStorage.getItem("kiln.theme") === "light" ? "light" : "dark";
void start();
render(<App />, document.getElementById("app")!);
