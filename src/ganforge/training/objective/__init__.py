"""What the steps optimise: adversarial losses, D's regularizers, what D sees (`adversary`), and the terms and
stateful parts some schemes add (content loss, path length, the history pool). Nothing here runs a step."""
