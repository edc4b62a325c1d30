from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from app.services.accounts import find_user_by_email

MIN_PASSWORD_LENGTH = 8


class LoginForm(FlaskForm):
    # No format check here: a mistyped address simply does not log in, with the same message.
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember_me = BooleanField("Remember me")
    next = HiddenField()
    submit = SubmitField("Log in")


class RegistrationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=255)])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=MIN_PASSWORD_LENGTH, max=200, message="The password must be at least 8 characters."),
        ],
    )
    password2 = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords must match.")]
    )
    submit = SubmitField("Create account")

    def validate_email(self, field):
        if find_user_by_email(field.data) is not None:
            raise ValidationError("An account with this email already exists. Log in instead?")
