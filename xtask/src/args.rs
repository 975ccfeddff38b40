//! Minimal argument handling: positional command, `--flag`, `--key value`; anything left over is an
//! error (a typo must not be silently ignored).

pub struct Args(Vec<String>);

impl From<Vec<String>> for Args {
    fn from(args: Vec<String>) -> Self {
        Self(args)
    }
}

impl Args {
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    pub fn next_positional(&mut self) -> Option<String> {
        let index = self.0.iter().position(|a| !a.starts_with("--"))?;
        Some(self.0.remove(index))
    }

    pub fn flag(&mut self, name: &str) -> bool {
        match self.0.iter().position(|a| a == name) {
            Some(index) => {
                self.0.remove(index);
                true
            }
            None => false,
        }
    }

    pub fn value(&mut self, name: &str) -> crate::Result<Option<String>> {
        let Some(index) = self.0.iter().position(|a| a == name) else { return Ok(None) };
        self.0.remove(index);
        if index >= self.0.len() {
            return Err(format!("{name} needs a value"));
        }
        Ok(Some(self.0.remove(index)))
    }

    pub fn finish(&self) -> crate::Result {
        match self.0.first() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected argument '{extra}' (see `cargo xtask help`)")),
        }
    }
}
