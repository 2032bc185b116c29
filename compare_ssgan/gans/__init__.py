"""The GAN objective: losses, penalties, self-supervision tasks and the model combining them."""
